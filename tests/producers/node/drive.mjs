// Drive the Vercel AI SDK (`ai` + `@ai-sdk/openai`) with its OpenTelemetry integration
// (`@ai-sdk/otel`) against the fake OpenAI upstream, exporting OTLP/HTTP protobuf.
//
//   node drive.mjs --upstream http://127.0.0.1:P/v1 --otlp http://127.0.0.1:Q \
//       [--integration legacy|otel] [--capture-content]
//
// `legacy` is the AI SDK's classic telemetry (`ai.*` attributes; spans ai.generateText >
// ai.generateText.doGenerate, ai.streamText > ai.streamText.doStream, ai.embed >
// ai.embed.doEmbed, ai.toolCall); `otel` the new GenAI-semconv one (`chat MODEL`,
// `embeddings MODEL`, `execute_tool NAME`, `invoke_agent`).
// Scenario (maxRetries 0): generateText (system + user, temperature 0.2, 50 tokens);
// streamText, read to the end; embed (text-embedding-3-small, 8 dimensions); generateText
// with a get_weather tool (two model calls and a tool call); a generateText failing with 429
// (x-fake-status); span rag-request > retrieve, then a generateText inside rag-request.
import { parseArgs } from 'node:util';
import { NodeSDK } from '@opentelemetry/sdk-node';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { trace } from '@opentelemetry/api';
import { generateText, streamText, embed, tool, stepCountIs, registerTelemetry } from 'ai';
import { OpenTelemetry, LegacyOpenTelemetry } from '@ai-sdk/otel';
import { createOpenAI } from '@ai-sdk/openai';
import { z } from 'zod';

const { values: args } = parseArgs({
  options: {
    upstream: { type: 'string' },
    otlp: { type: 'string' },
    integration: { type: 'string', default: 'legacy' },
    'capture-content': { type: 'boolean', default: false },
  },
});
const otlp = args.otlp.replace(/\/$/, '');
// service.name and deployment.environment come from OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES
const sdk = new NodeSDK({ traceExporter: new OTLPTraceExporter({ url: `${otlp}/v1/traces` }) });
sdk.start();
registerTelemetry(args.integration === 'otel' ? new OpenTelemetry() : new LegacyOpenTelemetry());

const content = args['capture-content'];
const telemetry = { isEnabled: true, recordInputs: content, recordOutputs: content };
const openai = createOpenAI({ baseURL: args.upstream, apiKey: 'sk-test-producer' });
const chat = openai.chat('gpt-4o-mini');

await generateText({
  model: chat,
  system: 'You are a terse assistant.',
  prompt: 'Say hello to the observability team.',
  temperature: 0.2,
  maxOutputTokens: 50,
  maxRetries: 0,
  experimental_telemetry: { ...telemetry, functionId: 'greet' },
});
const streamed = streamText({
  model: chat,
  prompt: 'Stream a short greeting.',
  maxRetries: 0,
  experimental_telemetry: telemetry,
});
for await (const _ of streamed.textStream) { /* read it all */ }
await embed({
  model: openai.embedding('text-embedding-3-small'),
  value: 'vector search query',
  providerOptions: { openai: { dimensions: 8 } },
  maxRetries: 0,
  experimental_telemetry: telemetry,
});
await generateText({
  model: chat,
  prompt: 'What is the weather in Paris?',
  tools: {
    get_weather: tool({
      description: 'The current weather in a city.',
      inputSchema: z.object({ city: z.string() }),
      execute: async ({ city }) => `18°C and sunny in ${city}`,
    }),
  },
  stopWhen: stepCountIs(2),
  maxRetries: 0,
  experimental_telemetry: telemetry,
});
try {
  await generateText({
    model: chat,
    prompt: 'This call fails with 429.',
    headers: { 'x-fake-status': '429' },
    maxRetries: 0,
    experimental_telemetry: telemetry,
  });
  throw new Error('the 429 call did not fail');
} catch (err) {
  if (err.message === 'the 429 call did not fail') throw err;
  console.error(`expected error ${err.statusCode ?? err.lastError?.statusCode}`);
}
const tracer = trace.getTracer('producer-scenario');
await tracer.startActiveSpan('rag-request', async (rag) => {
  tracer.startActiveSpan('retrieve', (span) => {
    span.setAttribute('retrieval.documents', 3);
    span.end();
  });
  await generateText({
    model: chat,
    system: 'Answer from the context.',
    prompt: 'Context: doc1 doc2 doc3. Question: what is RAG?',
    temperature: 0,
    maxRetries: 0,
    experimental_telemetry: telemetry,
  });
  rag.end();
});
await sdk.shutdown();
