// The official `openai` Node client streaming through a base URL (the gateway or the
// upstream directly), for the gateway's stream-fidelity test: prints what the app sees.
//   node openai_stream.mjs BASE_URL chat|chat-usage|responses
import OpenAI from "openai";

const [baseURL, mode] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: "sk-node-" + "0".repeat(32), maxRetries: 0 });
const out = { chunks: [], text: "" };
if (mode === "responses") {
  const stream = await client.responses.create({
    model: "gpt-4o-mini", input: "Say hi to the node client", stream: true,
  });
  for await (const event of stream) {
    out.chunks.push(event);
    if (event.type === "response.output_text.delta") out.text += event.delta;
  }
} else {
  const params = {
    model: "gpt-4o-mini",
    stream: true,
    messages: [{ role: "user", content: "Say hi to the node client" }],
  };
  if (mode === "chat-usage") params.stream_options = { include_usage: true };
  const stream = await client.chat.completions.create(params);
  for await (const chunk of stream) {
    out.chunks.push(chunk);
    // the loop in the SDK's README; without `?.` it throws on a choices-less chunk
    if (mode === "chat") out.text += chunk.choices[0].delta.content || "";
    else out.text += chunk.choices[0]?.delta?.content || "";
  }
}
console.log(JSON.stringify(out));
