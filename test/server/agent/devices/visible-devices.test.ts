import test from "ava";
import { mapFrameworkIndices, parseVisibleDevices, resolveVisibleDevices } from "../../../../server/agent/devices/visible-devices.js";
import { AppError, Code } from "../../../../server/shared/errors.js";

const gpus = [
  { index: 0, uuid: "GPU-8f3c1a2b-0000-1111-2222-333344445555" },
  { index: 1, uuid: "GPU-8f3d9e8f-6666-7777-8888-999900001111" },
  { index: 2, uuid: "GPU-1b2c3d4e-aaaa-bbbb-cccc-ddddeeeeffff" },
  { index: 3, uuid: "GPU-77aa0000-1234-5678-9abc-def012345678" },
];

function invalid(t: import("ava").ExecutionContext, fn: () => unknown, message: RegExp): AppError {
  const err = t.throws(fn, { instanceOf: AppError, message });
  t.is(err?.code, Code.InvalidArgument);
  t.truthy(err?.hint);
  return err as AppError;
}

test("undefined means every GPU, the empty string none", (t) => {
  t.is(parseVisibleDevices(undefined), undefined);
  t.deepEqual(parseVisibleDevices(""), []);
  t.deepEqual(resolveVisibleDevices(undefined, [gpus[2]!, gpus[0]!, gpus[1]!]), [0, 1, 2]);
  t.deepEqual(resolveVisibleDevices("", gpus), []);
});

test("parse: integers, UUIDs and MIG ids, whitespace trimmed", (t) => {
  t.deepEqual(parseVisibleDevices(" 2, GPU-8F3C ,MIG-abc"), [
    { kind: "index", index: 2, text: "2" },
    { kind: "uuid", uuidPrefix: "gpu-8f3c", text: "GPU-8F3C" },
    { kind: "mig", text: "MIG-abc" },
  ]);
});

test("parse: a negative ordinal ends the list as CUDA does (-1 hides every GPU)", (t) => {
  t.deepEqual(parseVisibleDevices("-1"), []);
  t.deepEqual(
    parseVisibleDevices("1,-1,2")?.map((e) => e.text),
    ["1"],
  );
});

test("parse: an entry that is neither an integer nor GPU-/MIG- is reported precisely", (t) => {
  invalid(t, () => parseVisibleDevices("0,gpu0,1"), /entry 2 \("gpu0"\) is neither.*only 1 GPU\(s\) would be visible/);
  invalid(t, () => parseVisibleDevices("0,,1"), /entry 2 \(""\) is empty/);
  invalid(t, () => parseVisibleDevices("GPU-"), /entry 1 \("GPU-"\)/);
});

test("resolve: integers keep framework order", (t) => {
  t.deepEqual(resolveVisibleDevices("3,1", gpus), [3, 1]);
});

test("resolve: full UUIDs and unique prefixes, case-insensitively", (t) => {
  t.deepEqual(resolveVisibleDevices(`${gpus[2]!.uuid},GPU-8f3c`, gpus), [2, 0]);
  t.deepEqual(resolveVisibleDevices("gpu-77AA, 1", gpus), [3, 1]);
});

test("resolve: an ambiguous prefix names the GPUs it matches", (t) => {
  invalid(t, () => resolveVisibleDevices("GPU-8f3", gpus), /ambiguous.*GPU-8f3c1a2b.*GPU 0.*GPU-8f3d9e8f.*GPU 1/);
});

test("resolve: a prefix that matches nothing", (t) => {
  invalid(t, () => resolveVisibleDevices("GPU-ffff", gpus), /"GPU-ffff" matches no GPU/);
});

test("resolve: MIG instances are rejected, pointing at the parent GPU", (t) => {
  invalid(
    t,
    () => resolveVisibleDevices("MIG-4f1e2d3c-aaaa-bbbb-cccc-000011112222", gpus),
    /MIG instances report no power: measure the parent GPU by its GPU- UUID or index/,
  );
});

test("resolve: an integer out of range says how many GPUs there are", (t) => {
  invalid(t, () => resolveVisibleDevices("0,4", gpus), /"4" is out of range: this host has 4 GPU\(s\) \(indices 0, 1, 2, 3\)/);
  invalid(t, () => resolveVisibleDevices("0", []), /this host has 0 GPU\(s\)$/);
});

test("resolve: the same GPU twice, by index and by UUID", (t) => {
  invalid(t, () => resolveVisibleDevices("1,GPU-8f3d", gpus), /names GPU 1 twice \("1" and "GPU-8f3d"\)/);
});

test("mapFrameworkIndices maps positions in the visible list to NVML indices", (t) => {
  const visible = resolveVisibleDevices("2,3", gpus);
  t.deepEqual(mapFrameworkIndices([0, 1], visible), [2, 3]);
  t.deepEqual(mapFrameworkIndices([1], visible), [3]);
  t.deepEqual(mapFrameworkIndices([], visible), []);
});

test("mapFrameworkIndices names the index and how many GPUs are visible", (t) => {
  invalid(t, () => mapFrameworkIndices([0, 2], [2, 3]), /GPU index 2 is not visible: 2 GPU\(s\) are visible; valid indices are 0-1/);
  invalid(t, () => mapFrameworkIndices([-1], [2, 3]), /GPU index -1 is not visible/);
  invalid(t, () => mapFrameworkIndices([0.5], [2, 3]), /GPU index 0.5 is not visible/);
  invalid(t, () => mapFrameworkIndices([0], []), /GPU index 0 is not visible: 0 GPU\(s\) are visible$/);
});
