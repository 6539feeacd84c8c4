// The official TypeScript SDK client against LensForge's /mcp: prints what an agent would see.
// Run by tests/mcp_server/test_clients.py with node, from the directory holding the SDK.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const url = process.argv[2];
const client = new Client({ name: "lensforge-ts-test", version: "1.0.0" });
await client.connect(new StreamableHTTPClientTransport(new URL(url)));
const out = { tools: (await client.listTools()).tools.map((tool) => tool.name) };
const calls = {
  ok: ["testing_echo", { text: "hi", times: 2 }],
  badType: ["testing_echo", { text: "hi", times: "many" }],
  badImage: ["testing_size", { image: "this is not base64!" }],
  failed: ["testing_fail", { message: "boom" }],
};
for (const [key, [name, args]] of Object.entries(calls)) {
  try {
    const result = await client.callTool({ name, arguments: args });
    out[key] = { isError: result.isError ?? false, content: result.content,
                 structuredContent: result.structuredContent ?? null, meta: result._meta ?? null };
  } catch (error) {
    out[key] = { thrown: String(error && error.message ? error.message : error) };
  }
}
await client.close();
console.log(JSON.stringify(out));
