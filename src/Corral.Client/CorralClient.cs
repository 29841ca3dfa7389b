using System.Net.Http.Headers;
using System.Text.Json;
using Corral.Client.Internal;
using Microsoft.Extensions.Http.Resilience;
using Polly;
using Polly.CircuitBreaker;
using Polly.Timeout;

namespace Corral.Client;

/// <summary>
/// A client of one Corral server (<c>corral serve</c>): create tasks, read and list them, wait for them, follow their
/// events, cancel, delete, and download what they printed. Thread-safe; keep one per server.
/// </summary>
/// <remarks>
/// Calls that are safe to repeat are retried after a connection that could not be made and after a 429 or 503 with
/// <c>Retry-After</c>; a circuit breaker fails calls at once while connections to the server keep failing (any HTTP
/// answer counts as the server being alive); each attempt has a timeout. Refusals throw a
/// <see cref="CorralApiException"/> subclass with the server's <c>code</c>; no answer throws
/// <see cref="CorralUnreachableException"/>.
/// </remarks>
public sealed partial class CorralClient : IDisposable
{
    private readonly HttpClient _http;

    private readonly bool _ownsHttp;

    private readonly CorralClientOptions _options;

    private readonly Uri _base;

    /// <summary>A client with its own connection pool and resilience pipeline (for use without dependency injection).</summary>
    /// <param name="options">The server and the settings; copied.</param>
    /// <exception cref="ArgumentException">The options cannot work (no absolute <see cref="CorralClientOptions.BaseAddress"/>, a timeout that is not positive).</exception>
    public CorralClient(CorralClientOptions options)
        : this(CreateHttpClient(options), options, ownsHttp: true)
    {
    }

    /// <summary>
    /// A client over an <see cref="HttpClient"/> the caller configured. The resilience is that client's:
    /// <c>services.AddCorralClient(…)</c> sets up the same pipeline as <see cref="CorralClient(CorralClientOptions)"/>.
    /// Set its <see cref="HttpClient.Timeout"/> to infinite (event streams last as long as their task).
    /// </summary>
    /// <param name="httpClient">The HTTP client; not disposed by this client.</param>
    /// <param name="options">The server and the settings; copied.</param>
    /// <exception cref="ArgumentException">The options cannot work.</exception>
    public CorralClient(HttpClient httpClient, CorralClientOptions options)
        : this(httpClient, options, ownsHttp: false)
    {
    }

    private CorralClient(HttpClient httpClient, CorralClientOptions options, bool ownsHttp)
    {
        ArgumentNullException.ThrowIfNull(httpClient);
        _options = options.Copy();
        _options.Validate();
        _http = httpClient;
        _ownsHttp = ownsHttp;
        string root = _options.BaseAddress!.AbsoluteUri;
        _base = new Uri(root.EndsWith('/') ? root : root + "/");
    }

    /// <summary>The server's address.</summary>
    public Uri BaseAddress => _base;

    /// <inheritdoc />
    public void Dispose()
    {
        if (_ownsHttp)
            _http.Dispose();
    }

    /// <summary>The transport under the pipeline: the connect timeout, and connections renewed now and then (DNS changes).</summary>
    internal static SocketsHttpHandler CreatePrimaryHandler(CorralClientOptions options) => new()
    {
        ConnectTimeout = options.ConnectTimeout,
        PooledConnectionLifetime = TimeSpan.FromMinutes(5),
        PooledConnectionIdleTimeout = TimeSpan.FromSeconds(60),
    };

    private static HttpClient CreateHttpClient(CorralClientOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var pipeline = new ResiliencePipelineBuilder<HttpResponseMessage>();
        CorralResilience.Configure(pipeline, options);
        var handler = new ResilienceHandler(pipeline.Build()) { InnerHandler = CreatePrimaryHandler(options) };
        return new HttpClient(handler) { Timeout = Timeout.InfiniteTimeSpan };
    }

    private HttpRequestMessage Request(HttpMethod method, string path, bool retrySafe = false, TimeSpan? timeout = null)
    {
        var request = new HttpRequestMessage(method, new Uri(_base, path));
        if (_options.Token is { } token)
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        if (retrySafe)
            request.Options.Set(CallOptions.RetrySafe, true);
        if (timeout is { } t)
            request.Options.Set(CallOptions.Timeout, t);
        return request;
    }

    /// <summary>Sends through the pipeline; no answer becomes <see cref="CorralUnreachableException"/>. Error answers are returned.</summary>
    private async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken,
        HttpCompletionOption completion = HttpCompletionOption.ResponseContentRead)
    {
        try
        {
            return await _http.SendAsync(request, completion, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (Unreachable(e, cancellationToken) is { } unreachable)
        {
            throw unreachable;
        }
    }

    /// <summary>Sends, and throws the typed exception for an error answer.</summary>
    private async Task<HttpResponseMessage> SendCheckedAsync(HttpRequestMessage request, CancellationToken cancellationToken,
        HttpCompletionOption completion = HttpCompletionOption.ResponseContentRead)
    {
        var response = await SendAsync(request, cancellationToken, completion).ConfigureAwait(false);
        if (response.IsSuccessStatusCode)
            return response;
        using (response)
            throw Problems.Exception(await Problems.ReadAsync(response, cancellationToken).ConfigureAwait(false));
    }

    private static async Task<JsonElement> ReadJsonAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        try
        {
            await using var stream = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
            return await JsonSerializer.DeserializeAsync<JsonElement>(stream, ClientJson.Options, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (Unreachable(e, cancellationToken) is { } unreachable)
        {
            throw unreachable;
        }
    }

    private static async Task<CorralTask> ReadTaskAsync(HttpResponseMessage response, CancellationToken cancellationToken) =>
        ClientJson.ReadTask(await ReadJsonAsync(response, cancellationToken).ConfigureAwait(false));

    /// <summary>What a transport exception means to the caller, or <c>null</c> for one that is the caller's (its own cancellation) or a bug.</summary>
    internal static CorralUnreachableException? Unreachable(Exception exception, CancellationToken cancellationToken) => exception switch
    {
        BrokenCircuitException open => new CorralUnreachableException(
            "Not sent: the circuit to the Corral server is open, because recent connections to it failed.", circuitOpen: true, open.RetryAfter, open),
        TimeoutRejectedException timeout => new CorralUnreachableException(
            $"The Corral server did not answer within {timeout.Timeout.TotalSeconds:0.###} s.", circuitOpen: false, null, timeout),
        HttpRequestException http => new CorralUnreachableException(
            $"No answer from the Corral server: {http.Message}", circuitOpen: false, null, http),
        IOException io => new CorralUnreachableException(
            $"The connection to the Corral server broke: {io.Message}", circuitOpen: false, null, io),
        OperationCanceledException cancelled when !cancellationToken.IsCancellationRequested => new CorralUnreachableException(
            "The transport gave up on the call (a timeout).", circuitOpen: false, null, cancelled),
        _ => null,
    };
}
