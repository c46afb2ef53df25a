/**
 * Every `grpcurl` command in the README, run in order through the strict reflection client
 * (test/helpers/strict-reflection.ts: descriptors from the server's reflection alone, as grpcurl gets them;
 * grpcurl itself is not installed here) against a real agent (fake NVML, one GPU at 300 W) and a real
 * intensity service (static DE=300, FR=60, GB=200). The README's addresses 127.0.0.1:50051 / :50061 become the test
 * servers'. A command that fails (unknown method, JSON the descriptors reject, an error status) fails here.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { JsonValue } from "@bufbuild/protobuf";
import test from "ava";
import { fakeNvml } from "./helpers/fake-nvml.js";
import { startTestAgent, startTestIntensity } from "./helpers/grpc.js";
import { dynamicCall, Reflection } from "./helpers/strict-reflection.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

/** The README's grpcurl commands as argument lists (continuation lines joined, single quotes honoured). */
function grpcurlCommands(markdown: string): string[][] {
  const blocks = [...markdown.matchAll(/```(\w*)\n([\s\S]*?)```/g)]
    .filter((m) => ["sh", "bash", ""].includes(m[1]!))
    .map((m) => m[2]!.replace(/\\\n\s*/g, ""));
  const lines = blocks.flatMap((b) => b.split("\n")).filter((l) => /^\s*grpcurl\s/.test(l));
  return lines.map((line) => [...line.matchAll(/'([^']*)'|(\S+)/g)].map((m) => m[1] ?? m[2]!).filter((w) => !w.startsWith("#")));
}

interface Parsed {
  address: string;
  data?: JsonValue;
  verb: "list" | "call";
  target?: string;
}

function parse(args: string[]): Parsed {
  const rest = args.slice(1);
  let data: JsonValue | undefined;
  const positional: string[] = [];
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i]!;
    if (a === "-plaintext") continue;
    if (a === "-d") data = JSON.parse(rest[++i]!) as JsonValue;
    else if (a.startsWith("-")) throw new Error(`grpcurl option ${a} is not supported by this test`);
    else positional.push(a);
  }
  const [address, target, extra] = positional;
  if (target === "list") return { address: address!, verb: "list", target: extra };
  return { address: address!, verb: "call", target, data };
}

test("every grpcurl command in the README works through a strict reflection client", async (t) => {
  const commands = grpcurlCommands(readFileSync(join(ROOT, "README.md"), "utf8"));
  t.true(commands.length >= 5, `found ${commands.length} grpcurl commands`);
  const nvml = fakeNvml({ gpus: [{ profile: [{ powerW: 300, ms: 1000 }] }] });
  const intensity = await startTestIntensity({ CARBONMON_PROVIDERS: "static", CARBONMON_INTENSITY_CONSTANTS: "DE=300,FR=60,GB=200" });
  const agent = await startTestAgent({ CARBONMON_NVML_LIBRARY: nvml.libraryPath });
  t.teardown(async () => {
    await agent.close();
    await intensity.close();
    nvml.cleanup();
  });
  const addresses: Record<string, string> = { "127.0.0.1:50051": agent.running.address, "127.0.0.1:50061": intensity.running.address };

  for (const args of commands) {
    const cmd = parse(args);
    const address = addresses[cmd.address];
    t.truthy(address, `${args.join(" ")}: the README uses the default addresses`);
    const reflection = new Reflection(address!);
    try {
      const services = await reflection.listServices();
      if (cmd.verb === "list") {
        t.true(services.length > 0, args.join(" "));
        continue;
      }
      const service = cmd.target!.slice(0, cmd.target!.indexOf("/"));
      t.true(services.includes(service), `${service} is listed`);
      const registry = await reflection.registryFor([service]);
      const [res] = await dynamicCall(address!, registry, cmd.target!, cmd.data ?? {});
      t.log(`${cmd.target}: ${JSON.stringify(res).slice(0, 160)}`);
      t.truthy(res, args.join(" "));
    } finally {
      reflection.close();
    }
  }
});
