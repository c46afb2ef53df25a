"""A strict reflection client in Python: from the server's reflection answers alone, build a
descriptor_pool (which rejects files with missing dependencies, misnamed files or hand-made map entries),
then call methods dynamically with canonical protobuf JSON.

Usage: strict_reflection.py ADDRESS REFLECTION_STUBS_DIR VERSION CALLS_JSON
  CALLS_JSON: [["pkg.Service/Method", {request}], ...]; prints one JSON line per call:
  {"method": ..., "response": {...}} or {"method": ..., "code": "NOT_FOUND", "details": ...}.
"""
import importlib.util
import json
import os
import sys

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory


def reflection_stub(channel, stubs, version):
    # protoc's output for grpc/reflection/<version>/reflection.proto; loaded by path, since a package named
    # "grpc" would shadow grpcio's.
    path = os.path.join(stubs, "grpc", "reflection", version, "reflection_pb2.py")
    spec = importlib.util.spec_from_file_location(f"reflection_{version}_pb2", path)
    pb2 = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pb2)
    call = channel.stream_stream(
        f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo",
        request_serializer=pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=pb2.ServerReflectionResponse.FromString,
    )
    return pb2, call


def ask(pb2, call, **request):
    [response] = list(call(iter([pb2.ServerReflectionRequest(**request)])))
    if response.HasField("error_response"):
        raise LookupError(response.error_response.error_message)
    return response


def load_pool(pb2, call, services):
    pool = descriptor_pool.DescriptorPool()
    protos = {}
    for service in services:
        response = ask(pb2, call, file_containing_symbol=service)
        for raw in response.file_descriptor_response.file_descriptor_proto:
            fdp = descriptor_pb2.FileDescriptorProto.FromString(raw)
            protos[fdp.name] = fdp
    added = set()

    def add(name):
        if name in added:
            return
        fdp = protos[name]  # a KeyError here: the answer lacked a dependency
        for dep in fdp.dependency:
            add(dep)
        pool.Add(fdp)  # strict: every type must resolve, map entries must be the compiler's
        added.add(name)

    for name in protos:
        add(name)
    return pool


def message_class(pool, full_name):
    desc = pool.FindMessageTypeByName(full_name)
    if hasattr(message_factory, "GetMessageClass"):
        return message_factory.GetMessageClass(desc)
    return message_factory.MessageFactory(pool).GetPrototype(desc)


def main():
    address, stubs, version, calls = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
    channel = grpc.insecure_channel(address)
    pb2, call = reflection_stub(channel, stubs, version)
    listed = [s.name for s in ask(pb2, call, list_services="*").list_services_response.service]
    services = sorted({m.split("/")[0] for m, _ in calls})
    missing = [s for s in services if s not in listed]
    if missing:
        raise SystemExit(f"not listed: {missing}")
    pool = load_pool(pb2, call, services)
    print(json.dumps({"services": listed, "methods": {s: [m.name for m in pool.FindServiceByName(s).methods] for s in services}}), flush=True)
    for method_name, request in calls:
        service, method = method_name.split("/")
        m = pool.FindServiceByName(service).methods_by_name[method]
        req_cls, res_cls = message_class(pool, m.input_type.full_name), message_class(pool, m.output_type.full_name)
        req = json_format.ParseDict(request, req_cls())
        path = f"/{service}/{method}"
        try:
            if m.server_streaming:
                stream = channel.unary_stream(path, req_cls.SerializeToString, res_cls.FromString)(req, timeout=10)
                res = next(iter(stream))
                stream.cancel()
            else:
                res = channel.unary_unary(path, req_cls.SerializeToString, res_cls.FromString)(req, timeout=10)
            out = {"method": method_name, "response": json_format.MessageToDict(res)}
        except grpc.RpcError as err:
            out = {"method": method_name, "code": err.code().name, "details": err.details()}
        print(json.dumps(out), flush=True)
    channel.close()


if __name__ == "__main__":
    main()
