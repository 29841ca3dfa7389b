using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Corral.Server.Tests.Support;

namespace Corral.Server.Tests.Telemetry;

/// <summary>Traces over OTLP: a task is a span with its phases, in the trace of the request that created it.</summary>
public sealed class TracingTests
{
    private static readonly string[] Phases = ["admission", "queue", "run", "teardown", "store"];

    [Fact(Timeout = 120_000)]
    public async Task A_task_is_one_span_with_its_phases_in_the_callers_trace()
    {
        await using var receiver = await OtlpReceiver.StartAsync();
        await using var server = await TestServer.StartAsync(s =>
        {
            s["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver.Endpoint;
            s["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf";
            s["OTEL_BSP_SCHEDULE_DELAY"] = "200";
        });

        // The caller's span: a backend that sends traceparent with its request.
        string traceId = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
        string callerSpanId = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8));
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/tasks?wait=60")
        {
            Content = new StringContent(JsonSerializer.Serialize(new { agent = "command", command = new[] { "bash", "-c", "echo traced; setsid sleep 30 & exit 0" } }),
                Encoding.UTF8, "application/json"),
        };
        request.Headers.Add("traceparent", $"00-{traceId}-{callerSpanId}-01");
        using var response = await server.Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var record = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        var process = record["process"]!;

        var spans = await receiver.WaitForTraceAsync(traceId, s => s.Count(x => x.Name.StartsWith("corral.task", StringComparison.Ordinal)) == 1 + Phases.Length
            && s.Any(x => x.Kind == OtlpSpan.ServerKind), TimeSpan.FromSeconds(30));

        // The request's server span is the caller's child; the task span is the request's child.
        var http = Assert.Single(spans, s => s.Kind == OtlpSpan.ServerKind);
        Assert.Equal(callerSpanId, http.ParentSpanId);
        var task = Assert.Single(spans, s => s.Name == "corral.task");
        Assert.Equal(http.SpanId, task.ParentSpanId);
        Assert.Equal("corral", task.Resource["service.name"]);
        Assert.Equal(record["id"]!.GetValue<string>(), task.Attributes["corral.task.id"]);
        Assert.Equal("command", task.Attributes["corral.agent"]);
        Assert.Equal("succeeded", task.Attributes["corral.task.status"]);
        Assert.Equal((long)process["pid"]!.GetValue<int>(), task.Attributes["process.pid"]);
        Assert.Equal(0L, task.Attributes["process.exit.code"]);
        Assert.Equal(process["containment"]!.GetValue<string>(), task.Attributes["corral.process.containment"]);
        int killed = process["killed"]!.AsArray().Count;
        Assert.True(killed >= 1, "the setsid sleep outlived the child");
        Assert.Equal((long)killed, task.Attributes["corral.process.killed"]);
        Assert.Equal((long)killed, task.Attributes["corral.process.escapees_killed"]);
        Assert.Equal(1, task.StatusCode); // STATUS_CODE_OK

        // One child span per phase, in order, each where the one before ended, timed from the record.
        var phases = Phases.Select(p => Assert.Single(spans, s => s.Name == "corral.task." + p)).ToList();
        Assert.All(phases, p => Assert.Equal(task.SpanId, p.ParentSpanId));
        Assert.Equal(task.StartNanos, phases[0].StartNanos);
        for (int i = 1; i < phases.Count; i++)
            Assert.True(phases[i].StartNanos >= phases[i - 1].EndNanos, $"{phases[i].Name} starts before {phases[i - 1].Name} ends");
        Assert.Equal(task.EndNanos, phases[^1].EndNanos);
        Assert.Equal(Time(record["startedAt"]), phases[2].Start);
        Assert.Equal(Time(process["exitedAt"]), phases[2].End);
        Assert.Equal(Time(process["exitedAt"]), phases[3].Start);
        Assert.Equal(Time(process["completedAt"]), phases[3].End);
        Assert.Equal(Time(record["endedAt"]), phases[4].Start);
        Assert.True(task.Start <= Time(record["createdAt"]));

        // The teardown span tells each killed process and how it was found.
        var events = phases[3].Events.Where(e => e.Name == "process.killed").ToList();
        Assert.Equal(killed, events.Count);
        Assert.Equal(process["killed"]!.AsArray().Select(k => k!["foundBy"]!.GetValue<string>()), events.Select(e => (string)e.Attributes["corral.found_by"]!));
        Assert.All(events, e => Assert.Equal(true, e.Attributes["corral.escapee"]));
    }

    private static DateTimeOffset Time(JsonNode? node) => DateTimeOffset.Parse(node!.GetValue<string>(), System.Globalization.CultureInfo.InvariantCulture);
}
