/**
 * An address on 127.0.0.1 where no gRPC server answers, held for as long as a test needs it.
 *
 * Picking a free port and closing it is racy when tests run concurrently: another test's server, bound
 * to port 0, may be handed the same port, and a client meant to find nothing there finds a real service
 * instead. Here the port stays bound by a TCP listener that drops every connection at once, which a
 * gRPC client sees as UNAVAILABLE, exactly as it would see a refused connection. `release()` frees the
 * port for the test to start its own server there.
 */
import { createServer, type AddressInfo } from "node:net";

export interface DownAddress {
  readonly port: number;
  /** host:port */
  readonly address: string;
  /** Stops holding the port (idempotent). Start a server on it right after; it is not reserved any more. */
  release(): Promise<void>;
}

export async function downAddress(t: { teardown(fn: () => unknown): void }): Promise<DownAddress> {
  const server = createServer((socket) => socket.on("error", () => {}).destroy());
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  let released: Promise<void> | undefined;
  const release = () => (released ??= new Promise<void>((resolve) => server.close(() => resolve())));
  t.teardown(release);
  return { port, address: `127.0.0.1:${port}`, release };
}
