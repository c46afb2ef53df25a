/**
 * The server's certificates as a grpc-js CertificateProvider that reads its files at start and again on
 * reload() (SIGHUP). grpc-js applies an update with setSecureContext: new handshakes use the new
 * certificates; established connections and their open streams are untouched. A reload whose files do not
 * read, or whose key does not match its certificate, keeps the previous certificates in force.
 */
import { readFileSync } from "node:fs";
import { createSecureContext } from "node:tls";
import { experimental, type ServerCredentials } from "@grpc/grpc-js";
import { AppError, Code } from "../errors.js";

type CaListener = Parameters<experimental.CertificateProvider["addCaCertificateListener"]>[0];
type IdentityListener = Parameters<experimental.CertificateProvider["addIdentityCertificateListener"]>[0];

export interface TlsFiles {
  certFile: string;
  keyFile: string;
  /** Set: mutual TLS, clients must present a certificate signed by one of these CAs. */
  clientCaFile: string | undefined;
}

interface Loaded {
  cert: Buffer;
  key: Buffer;
  ca: Buffer | undefined;
}

function read(path: string, env: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new AppError(
      Code.FailedPrecondition,
      `${env} ${JSON.stringify(path)}: cannot read it (${(err as NodeJS.ErrnoException).code ?? "error"})`,
    );
  }
}

/** Reads the files and checks that they form a usable context (the key matches the certificate). */
function load(files: TlsFiles): Loaded {
  const loaded: Loaded = {
    cert: read(files.certFile, "CARBONMON_TLS_CERT_FILE"),
    key: read(files.keyFile, "CARBONMON_TLS_KEY_FILE"),
    ca: files.clientCaFile === undefined ? undefined : read(files.clientCaFile, "CARBONMON_TLS_CLIENT_CA_FILE"),
  };
  try {
    createSecureContext({ cert: loaded.cert, key: loaded.key, ...(loaded.ca ? { ca: loaded.ca } : {}) });
  } catch (err) {
    // OpenSSL's reason (e.g. "key values mismatch"), never the files' contents.
    const reason = (err as Error).message.split("\n")[0];
    throw new AppError(
      Code.FailedPrecondition,
      `CARBONMON_TLS_CERT_FILE / CARBONMON_TLS_KEY_FILE${files.clientCaFile ? " / CARBONMON_TLS_CLIENT_CA_FILE" : ""}: not a usable certificate, key and CA (${reason})`,
    );
  }
  return loaded;
}

export class ReloadableCertificates implements experimental.CertificateProvider {
  private current: Loaded;
  private readonly caListeners = new Set<CaListener>();
  private readonly identityListeners = new Set<IdentityListener>();

  /** Throws an AppError naming the file when the certificates cannot be used. */
  constructor(private readonly files: TlsFiles) {
    this.current = load(files);
  }

  get mutual(): boolean {
    return this.files.clientCaFile !== undefined;
  }

  /** Re-reads the files and hands them to every listening server; on failure, returns why and changes nothing. */
  reload(): AppError | undefined {
    try {
      this.current = load(this.files);
    } catch (err) {
      return AppError.from(err);
    }
    for (const l of this.identityListeners) l({ certificate: this.current.cert, privateKey: this.current.key });
    if (this.current.ca) for (const l of this.caListeners) l({ caCertificate: this.current.ca });
    return undefined;
  }

  // The current certificates reach a new listener in a microtask, not during add: grpc-js registers its
  // own watcher only after adding the listener, and would miss a synchronous first update.
  addCaCertificateListener(listener: CaListener): void {
    this.caListeners.add(listener);
    queueMicrotask(() => this.caListeners.has(listener) && this.current.ca && listener({ caCertificate: this.current.ca }));
  }

  removeCaCertificateListener(listener: CaListener): void {
    this.caListeners.delete(listener);
  }

  addIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.add(listener);
    queueMicrotask(
      () => this.identityListeners.has(listener) && listener({ certificate: this.current.cert, privateKey: this.current.key }),
    );
  }

  removeIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.delete(listener);
  }

  /** grpc-js server credentials backed by this provider. */
  credentials(): ServerCredentials {
    // grpc-js 1.14 passes its first two arguments on to (identity, ca) in that order, whatever their
    // declared names; this one provider serves both, so the order cannot be got wrong.
    return experimental.createCertificateProviderServerCredentials(this, this.mutual ? this : null, this.mutual);
  }
}
