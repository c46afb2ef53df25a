/**
 * gRPC server reflection (so grpcurl and other generic clients can list and call everything), built on the
 * first reflection call instead of at start: loading the reflection protos and indexing every descriptor
 * costs an idle agent about 15 MB of RSS (bench/startup.ts), and most agents are never reflected on.
 */
import type { MethodDefinition, Server, UntypedHandleCall } from "@grpc/grpc-js";
import type { PackageDefinition } from "@grpc/proto-loader";
import { ReflectionService } from "@grpc/reflection";

/** The reflection methods @grpc/reflection serves (both versions of the one bidirectional stream). */
export const REFLECTION_PATHS = ["/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"];

type Untyped = MethodDefinition<unknown, unknown>;

/** What a ReflectionService adds to a server, by method path. */
function methodsByPath(service: ReflectionService): Map<string, { method: Untyped; handler: UntypedHandleCall }> {
  const methods = new Map<string, { method: Untyped; handler: UntypedHandleCall }>();
  const capture = {
    addService(definition: Record<string, Untyped>, implementation: Record<string, UntypedHandleCall>): void {
      for (const [name, method] of Object.entries(definition)) methods.set(method.path, { method, handler: implementation[name]! });
    },
  };
  service.addToServer(capture as unknown as Server);
  return methods;
}

/**
 * Adds reflection for `services`: each method is registered by its path, and its serializers and handler
 * stand in for the real ones, which `definitions` (the .proto files, loaded) builds on first use.
 */
export function addLazyReflection(server: Server, services: string[], definitions: () => PackageDefinition): void {
  let built: ReturnType<typeof methodsByPath> | undefined;
  const real = (path: string) => {
    built ??= methodsByPath(new ReflectionService(definitions(), { services }));
    const found = built.get(path);
    if (!found) throw new Error(`@grpc/reflection no longer serves ${path}`);
    return found;
  };
  for (const path of REFLECTION_PATHS) {
    const method: Untyped = {
      path,
      requestStream: true,
      responseStream: true,
      requestSerialize: (value) => real(path).method.requestSerialize(value),
      requestDeserialize: (bytes) => real(path).method.requestDeserialize(bytes),
      responseSerialize: (value) => real(path).method.responseSerialize(value),
      responseDeserialize: (bytes) => real(path).method.responseDeserialize(bytes),
    };
    const handler = ((call: unknown) => (real(path).handler as (call: unknown) => void)(call)) as UntypedHandleCall;
    server.addService({ ServerReflectionInfo: method }, { ServerReflectionInfo: handler });
  }
}
