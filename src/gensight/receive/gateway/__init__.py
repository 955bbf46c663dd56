"""The gateway: a recording proxy for OpenAI's, Anthropic's and Gemini's APIs ("change one URL").

Usage: point any OpenAI client at Gensight instead of the provider::

    client = OpenAI(base_url="http://127.0.0.1:4318/openai/v1")        # upstream "openai"
    client = OpenAI(base_url="http://127.0.0.1:4318/p/deepseek/v1")    # upstream "deepseek"

and every call is recorded (input, output, latency, time to first token, tokens,
cost, failure cause) while the client notices nothing.

Routes
    ``/openai/v1/{path}`` goes to the upstream named ``openai``, ``/p/{name}/v1/{path}``
    to the upstream ``name``; upstreams come from ``gensight serve --upstream NAME=URL``
    (default ``openai=https://api.openai.com/v1``). An unknown name gets a 404 in the
    OpenAI error shape listing the configured upstreams; no other host is contacted.
    Upstreams on a provider's own wire (``NAME=anthropic:URL``, ``NAME=gemini:URL``;
    built in: ``anthropic`` and ``gemini``) take ``/anthropic/{path}``, ``/gemini/{path}``
    or ``/p/{name}/{path}``, the path their own SDK sends (``/v1/messages``,
    ``/v1beta/models/…:generateContent``); ``anthropic.py`` and ``gemini.py`` read them,
    and the gateway's own errors come in that wire's shape. Azure OpenAI:
    ``AzureOpenAI(azure_endpoint="http://HOST:4318/azure/NAME")`` reaches
    ``--upstream NAME=https://RES.openai.azure.com`` (``/azure/NAME/openai/deployments/…``
    goes to ``URL/openai/deployments/…``); the deployment and ``api-version`` are recorded.
    Every other path under a gateway prefix is a 404 in the wire's error shape.

Transparency
    Status, headers and body pass through unchanged (hop-by-hop headers aside; the
    server sets its own ``Date``). ``Authorization``, ``api-key`` and every other
    header are forwarded and never stored or logged. One exception: a streamed chat
    completion is sent upstream with ``stream_options.include_usage`` set, and when
    the client had not asked for usage the final usage chunk is removed (the other
    chunks then carry ``"usage": null``, as with the option set). Streams are
    forwarded chunk by chunk as they arrive.

Request headers read and stripped
    ``X-Gensight-App``, ``X-Gensight-User``, ``X-Gensight-Session``,
    ``X-Gensight-Tags`` (comma list) set the record's fields; ``X-Gensight-Key`` is
    the gateway key when the server has ``--api-key``. ``traceparent`` is forwarded
    and makes the gateway span a child of the caller's span.

Traces
    Every answer to a call carries ``X-Gensight-Call-Id``, its record's id. The
    upstream's ``x-request-id`` (``request-id``) is the record's ``upstream_request_id``,
    its ``x-ratelimit-*`` headers ``http.response.header.*`` attributes. A request the
    gateway answers itself (unknown upstream or path 404, body too large 413, budget 429,
    key 401/403) is recorded as a failed call (a span when it is no call), with
    ``gensight.refusal`` its code. JSON bodies are read whole within ``--max-body``;
    uploads (any other body) are streamed within ``--max-upload`` (``uploads``).

Failures
    ``--retries N`` (default 2): 429, 5xx and connection failures are retried with
    exponential backoff and jitter (``Retry-After`` / ``retry-after-ms`` honoured,
    up to ``--retry-max-wait``), only while nothing has reached the client; then
    ``--fallback NAME`` gets the same tries. Upstream error answers reach the client
    as sent; an upstream that cannot be reached gets a 502, one that does not answer
    in time (``--upstream-timeout``) a 504, both with an OpenAI-style error body.
    A stream cut mid-way ends with an OpenAI-style ``data: {"error": …}`` event.
    Every attempt is a client span under the gateway's server span.

Recording is fail-open: records go to the pipeline's bounded queue without waiting;
a full queue or a down store costs records (counted in ``/api/health``), never calls.

Modules, one idea each: ``app`` (ASGI entry, routing, the retry loop), ``policy``
(retries, backoff, Retry-After, fallback), ``forward`` (headers, the upstream request,
streaming the answer), ``capture`` (reading requests and answers of each operation),
``sse`` (event-stream framing), ``record`` (the CallRecord and spans), ``call`` (one
request's state), ``errors`` (OpenAI-style error bodies), ``upstreams`` (configured
upstreams), ``routes`` (which upstream a path names), ``uploads`` (streamed bodies).
"""

from gensight.receive.gateway.app import Gateway, GatewayMiddleware, Submit, from_settings
from gensight.receive.gateway.errors import openai_error

__all__ = ["Gateway", "GatewayMiddleware", "Submit", "from_settings", "openai_error"]
