"""A PEP 517 build backend without dependencies (pip's isolated build environment offline has none).

build_wheel: copies src/carbonmon, generates carbonmon/{agent,intensity}/v1/*_pb2.py and *_pb2_grpc.py
from the contract's .proto files, and writes a pure-Python wheel (PEP 427) with its RECORD.
The .proto files: CARBONMON_PROTO_DIR, else ../../proto next to this project (the repository layout),
else proto/ inside it (an sdist). The compiler: grpc_tools.protoc when importable (pip's grpcio-tools),
else protoc + grpc_python_plugin on PATH (or CARBONMON_PROTOC / CARBONMON_GRPC_PYTHON_PLUGIN), with the
well-known types from CARBONMON_PROTOC_INCLUDE or /usr/include, /usr/local/include.
"""
import base64
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TAG = "py3-none-any"


def _project():
    text = open(os.path.join(HERE, "pyproject.toml"), encoding="utf-8").read()
    section = text.split("[project]", 1)[1]
    get = lambda key: re.search(rf'^{key}\s*=\s*"([^"]*)"', section, re.M).group(1)  # noqa: E731
    deps = re.findall(r'"([^"]+)"', re.search(r"^dependencies\s*=\s*\[(.*?)\]", section, re.M | re.S).group(1))
    return {"name": get("name"), "version": get("version"), "description": get("description"),
            "requires_python": get("requires-python"), "dependencies": deps}


def _proto_dir():
    for candidate in (os.environ.get("CARBONMON_PROTO_DIR"), os.path.join(HERE, "..", "..", "proto"), os.path.join(HERE, "proto")):
        if candidate and os.path.isdir(os.path.join(candidate, "carbonmon")):
            return os.path.abspath(candidate)
    raise RuntimeError("carbonmon build: no carbonmon/*.proto found (set CARBONMON_PROTO_DIR to the repository's proto/)")


def _protos(root):
    out = []
    for dirpath, _, files in os.walk(os.path.join(root, "carbonmon")):
        out += [os.path.relpath(os.path.join(dirpath, f), root) for f in files if f.endswith(".proto")]
    return sorted(out)


def _include():
    for d in (os.environ.get("CARBONMON_PROTOC_INCLUDE"), "/usr/include", "/usr/local/include"):
        if d and os.path.isfile(os.path.join(d, "google", "protobuf", "timestamp.proto")):
            return d
    raise RuntimeError("carbonmon build: google/protobuf/timestamp.proto not found (apt-get install libprotobuf-dev, or set CARBONMON_PROTOC_INCLUDE)")


def generate_stubs(out_dir):
    """Writes carbonmon/**/*_pb2.py and *_pb2_grpc.py under out_dir."""
    root = _proto_dir()
    protos = _protos(root)
    try:
        import grpc_tools
        from grpc_tools import protoc as grpc_protoc

        include = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")  # the well-known types
        args = ["grpc_tools.protoc", f"-I{root}", f"-I{include}", f"--python_out={out_dir}", f"--grpc_python_out={out_dir}", *protos]
        if grpc_protoc.main(args) != 0:
            raise RuntimeError("carbonmon build: grpc_tools.protoc failed")
        return protos
    except ImportError:
        pass
    protoc = os.environ.get("CARBONMON_PROTOC") or shutil.which("protoc")
    plugin = os.environ.get("CARBONMON_GRPC_PYTHON_PLUGIN") or shutil.which("grpc_python_plugin")
    if not protoc or not plugin:
        raise RuntimeError("carbonmon build: needs grpcio-tools, or protoc and grpc_python_plugin "
                           "(apt-get install protobuf-compiler protobuf-compiler-grpc libprotobuf-dev)")
    subprocess.run([protoc, f"-I{root}", f"-I{_include()}", f"--python_out={out_dir}", f"--grpc_out={out_dir}",
                    f"--plugin=protoc-gen-grpc={plugin}", *protos], check=True)
    return protos


def _metadata(p):
    lines = ["Metadata-Version: 2.1", f"Name: {p['name']}", f"Version: {p['version']}", f"Summary: {p['description']}",
             f"Requires-Python: {p['requires_python']}", "License: Apache-2.0"]
    lines += [f"Requires-Dist: {d}" for d in p["dependencies"]]
    return "\n".join(lines) + "\n"


def _dist_info(p):
    return f"{p['name']}-{p['version']}.dist-info"


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    p = _project()
    d = os.path.join(metadata_directory, _dist_info(p))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "METADATA"), "w", encoding="utf-8") as f:
        f.write(_metadata(p))
    return _dist_info(p)


def _tree(stage):
    """The package's files: sources, then generated stubs, with an __init__.py in every package directory."""
    shutil.copytree(os.path.join(HERE, "src", "carbonmon"), os.path.join(stage, "carbonmon"),
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    generate_stubs(stage)
    for dirpath, _, files in os.walk(os.path.join(stage, "carbonmon")):
        if "__init__.py" not in files:
            open(os.path.join(dirpath, "__init__.py"), "w").close()


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    p = _project()
    name = f"{p['name']}-{p['version']}-{TAG}.whl"
    info = _dist_info(p)
    with tempfile.TemporaryDirectory() as stage:
        _tree(stage)
        files = {}
        for dirpath, _, names in os.walk(stage):
            for n in sorted(names):
                full = os.path.join(dirpath, n)
                files[os.path.relpath(full, stage).replace(os.sep, "/")] = open(full, "rb").read()
        files[f"{info}/METADATA"] = _metadata(p).encode()
        files[f"{info}/WHEEL"] = f"Wheel-Version: 1.0\nGenerator: carbonmon_build\nRoot-Is-Purelib: true\nTag: {TAG}\n".encode()
        record = []
        for path, data in sorted(files.items()):
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{path},sha256={digest},{len(data)}")
        record.append(f"{info}/RECORD,,")
        files[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
        os.makedirs(wheel_directory, exist_ok=True)
        with zipfile.ZipFile(os.path.join(wheel_directory, name), "w", zipfile.ZIP_DEFLATED) as whl:
            for path, data in files.items():
                whl.writestr(path, data)
    return name


def build_sdist(sdist_directory, config_settings=None):
    """A source archive that builds anywhere: the project with a copy of the .proto files under proto/."""
    import tarfile

    p = _project()
    base = f"{p['name']}-{p['version']}"
    path = os.path.join(sdist_directory, f"{base}.tar.gz")
    with tarfile.open(path, "w:gz") as tar:
        for item in ("pyproject.toml", "README.md", "_build", "src"):
            tar.add(os.path.join(HERE, item), arcname=f"{base}/{item}", filter=lambda ti: None if "__pycache__" in ti.name else ti)
        tar.add(_proto_dir(), arcname=f"{base}/proto")
        info = tarfile.TarInfo(f"{base}/PKG-INFO")
        data = _metadata(p).encode()
        info.size = len(data)
        import io

        tar.addfile(info, io.BytesIO(data))
    return os.path.basename(path)


if __name__ == "__main__":  # python3 _build/carbonmon_build.py OUT: the stubs alone (tests, development)
    generate_stubs(sys.argv[1])
