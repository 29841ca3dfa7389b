using System.Collections.Concurrent;
using System.Text;
using Corral.Server.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;

namespace Corral.Server.Tests.Telemetry;

/// <summary>A span as an OTLP exporter sent it (the fields the tests read).</summary>
internal sealed record OtlpSpan(string TraceId, string SpanId, string ParentSpanId, string Name, int Kind, ulong StartNanos, ulong EndNanos,
    IReadOnlyDictionary<string, object?> Attributes, IReadOnlyList<OtlpEvent> Events, int StatusCode, IReadOnlyDictionary<string, object?> Resource)
{
    /// <summary>OTLP's <c>SPAN_KIND_SERVER</c>.</summary>
    public const int ServerKind = 2;

    public DateTimeOffset Start => FromNanos(StartNanos);

    public DateTimeOffset End => FromNanos(EndNanos);

    private static DateTimeOffset FromNanos(ulong nanos) => DateTimeOffset.UnixEpoch.AddTicks((long)(nanos / 100));
}

/// <summary>A span event as exported.</summary>
internal sealed record OtlpEvent(string Name, ulong TimeNanos, IReadOnlyDictionary<string, object?> Attributes);

/// <summary>
/// An OTLP/HTTP trace receiver on loopback (<c>POST /v1/traces</c>, protobuf): what a collector would get from the
/// server. It decodes the few messages of <c>ExportTraceServiceRequest</c> it needs straight from the wire format.
/// </summary>
internal sealed class OtlpReceiver : IAsyncDisposable
{
    private readonly WebApplication _app;

    private OtlpReceiver(WebApplication app, string endpoint)
    {
        _app = app;
        Endpoint = endpoint;
    }

    /// <summary>The base address, as <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> takes it.</summary>
    public string Endpoint { get; }

    public ConcurrentQueue<OtlpSpan> Spans { get; } = new();

    public static async Task<OtlpReceiver> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        var app = builder.Build();
        OtlpReceiver? receiver = null;
        app.MapPost("/v1/traces", async (HttpContext context) =>
        {
            using var body = new MemoryStream();
            await context.Request.Body.CopyToAsync(body);
            foreach (var span in Decode(body.ToArray()))
                receiver!.Spans.Enqueue(span);
            return Results.Bytes([], "application/x-protobuf"); // an empty ExportTraceServiceResponse
        });
        await app.StartAsync();
        receiver = new OtlpReceiver(app, CorralServer.Addresses(app).Single());
        return receiver;
    }

    /// <summary>Waits until the spans of <paramref name="traceId"/> satisfy <paramref name="condition"/>.</summary>
    public async Task<List<OtlpSpan>> WaitForTraceAsync(string traceId, Func<List<OtlpSpan>, bool> condition, TimeSpan deadline)
    {
        var limit = DateTime.UtcNow + deadline;
        while (true)
        {
            var spans = Spans.Where(s => s.TraceId == traceId).ToList();
            if (condition(spans))
                return spans;
            if (DateTime.UtcNow > limit)
                throw new TimeoutException($"Timed out waiting for the trace {traceId}; it has: {string.Join(", ", spans.Select(s => s.Name))}");
            await Task.Delay(100);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }

    // --- The wire format: ExportTraceServiceRequest { ResourceSpans resource_spans = 1 } ------------------------------

    private static IEnumerable<OtlpSpan> Decode(byte[] request)
    {
        foreach (var (field, resourceSpans) in Fields(request))
        {
            if (field != 1)
                continue;
            var resource = new Dictionary<string, object?>();
            var scopes = new List<byte[]>();
            foreach (var (f, value) in Fields((byte[])resourceSpans))
            {
                if (f == 1) // Resource { KeyValue attributes = 1 }
                    foreach (var (a, kv) in Fields((byte[])value))
                        if (a == 1) AddAttribute(resource, (byte[])kv);
                if (f == 2) // ScopeSpans
                    scopes.Add((byte[])value);
            }

            foreach (var scope in scopes)
                foreach (var (f, span) in Fields(scope))
                    if (f == 2) yield return DecodeSpan((byte[])span, resource);
        }
    }

    private static OtlpSpan DecodeSpan(byte[] span, Dictionary<string, object?> resource)
    {
        string traceId = "", spanId = "", parent = "", name = "";
        int kind = 0, status = 0;
        ulong start = 0, end = 0;
        var attributes = new Dictionary<string, object?>();
        var events = new List<OtlpEvent>();
        foreach (var (field, value) in Fields(span))
        {
            switch (field)
            {
                case 1: traceId = Convert.ToHexStringLower((byte[])value); break;
                case 2: spanId = Convert.ToHexStringLower((byte[])value); break;
                case 4: parent = Convert.ToHexStringLower((byte[])value); break;
                case 5: name = Encoding.UTF8.GetString((byte[])value); break;
                case 6: kind = (int)(ulong)value; break;
                case 7: start = (ulong)value; break;
                case 8: end = (ulong)value; break;
                case 9: AddAttribute(attributes, (byte[])value); break;
                case 11: events.Add(DecodeEvent((byte[])value)); break;
                case 15: // Status { string message = 2; StatusCode code = 3 }
                    foreach (var (f, v) in Fields((byte[])value))
                        if (f == 3) status = (int)(ulong)v;
                    break;
            }
        }

        return new OtlpSpan(traceId, spanId, parent, name, kind, start, end, attributes, events, status, resource);
    }

    private static OtlpEvent DecodeEvent(byte[] bytes)
    {
        ulong time = 0;
        string name = "";
        var attributes = new Dictionary<string, object?>();
        foreach (var (field, value) in Fields(bytes))
        {
            if (field == 1) time = (ulong)value;
            else if (field == 2) name = Encoding.UTF8.GetString((byte[])value);
            else if (field == 3) AddAttribute(attributes, (byte[])value);
        }

        return new OtlpEvent(name, time, attributes);
    }

    /// <summary>KeyValue { string key = 1; AnyValue value = 2 }; AnyValue: string 1, bool 2, int64 3, double 4.</summary>
    private static void AddAttribute(Dictionary<string, object?> into, byte[] keyValue)
    {
        string key = "";
        object? result = null;
        foreach (var (field, value) in Fields(keyValue))
        {
            if (field == 1)
            {
                key = Encoding.UTF8.GetString((byte[])value);
            }
            else if (field == 2)
            {
                foreach (var (kind, v) in Fields((byte[])value))
                {
                    result = kind switch
                    {
                        1 => Encoding.UTF8.GetString((byte[])v),
                        2 => (ulong)v != 0,
                        3 => (long)(ulong)v,
                        4 => BitConverter.UInt64BitsToDouble((ulong)v),
                        _ => v,
                    };
                }
            }
        }

        into[key] = result;
    }

    /// <summary>The fields of a message: (number, value) with a varint or fixed64 as <c>ulong</c>, a length-delimited field as <c>byte[]</c>.</summary>
    private static IEnumerable<(int Field, object Value)> Fields(byte[] message)
    {
        int at = 0;
        while (at < message.Length)
        {
            ulong tag = Varint(message, ref at);
            int field = (int)(tag >> 3);
            switch ((int)(tag & 7))
            {
                case 0:
                    yield return (field, Varint(message, ref at));
                    break;
                case 1:
                    yield return (field, BitConverter.ToUInt64(message, at));
                    at += 8;
                    break;
                case 2:
                    int length = (int)Varint(message, ref at);
                    yield return (field, message[at..(at + length)]);
                    at += length;
                    break;
                case 5:
                    yield return (field, (ulong)BitConverter.ToUInt32(message, at));
                    at += 4;
                    break;
                default:
                    throw new InvalidDataException($"wire type {tag & 7} at {at}");
            }
        }
    }

    private static ulong Varint(byte[] bytes, ref int at)
    {
        ulong value = 0;
        for (int shift = 0; ; shift += 7)
        {
            byte b = bytes[at++];
            value |= (ulong)(b & 0x7f) << shift;
            if ((b & 0x80) == 0)
                return value;
        }
    }
}
