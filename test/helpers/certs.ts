/**
 * Test certificates made with Debian's openssl (e2e tier only): a CA, a server certificate for 127.0.0.1
 * and localhost, client certificates. EC P-256, valid for a day, in a fresh temporary directory.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface Pki {
  dir: string;
  /** Makes a CA; returns the paths of its certificate and key. */
  ca(name: string): { cert: string; key: string };
  /** A certificate signed by `ca` for 127.0.0.1/localhost (server) or a named client. */
  issue(ca: { cert: string; key: string }, name: string, kind: "server" | "client"): { cert: string; key: string };
  cleanup(): void;
}

const openssl = (dir: string, args: string[]): void =>
  void execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });
const EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

export function makePki(): Pki {
  const dir = mkdtempSync(join(tmpdir(), "carbonmon-pki-"));
  return {
    dir,
    ca(name) {
      openssl(dir, ["req", "-x509", ...EC, "-keyout", `${name}.key`, "-out", `${name}.pem`, "-subj", `/CN=${name}`, "-days", "1"]);
      return { cert: join(dir, `${name}.pem`), key: join(dir, `${name}.key`) };
    },
    issue(ca, name, kind) {
      const ext = join(dir, `${name}.ext`);
      writeFileSync(
        ext,
        kind === "server" ? "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n" : "extendedKeyUsage=clientAuth\n",
      );
      openssl(dir, ["req", ...EC, "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${name}`]);
      openssl(dir, [
        "x509",
        "-req",
        "-in",
        `${name}.csr`,
        "-CA",
        ca.cert,
        "-CAkey",
        ca.key,
        "-CAcreateserial",
        "-out",
        `${name}.pem`,
        "-days",
        "1",
        "-extfile",
        ext,
      ]);
      return { cert: join(dir, `${name}.pem`), key: join(dir, `${name}.key`) };
    },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
