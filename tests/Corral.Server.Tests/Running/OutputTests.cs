using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Corral.Server.Tests.Support;

namespace Corral.Server.Tests.Running;

/// <summary>Output is kept exactly, once, within the task's cap; served raw, as a transcript and as events.</summary>
public sealed class OutputTests(SharedServer shared) : IClassFixture<SharedServer>
{
    private readonly HttpClient _http = shared.Server.Http;

    private async Task<byte[]> OutputAsync(string id, string stream = "stdout")
    {
        using var response = await _http.GetAsync($"/v1/tasks/{id}/output?stream={stream}");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("application/octet-stream", response.Content.Headers.ContentType?.MediaType);
        return await response.Content.ReadAsByteArrayAsync();
    }

    [Fact(Timeout = 60_000)]
    public async Task Invalid_utf8_survives_byte_for_byte_and_events_carry_its_exact_bytes_in_base64()
    {
        var r = await _http.CreateAsync(new { agent = "command", command = new[] { "bash", "-c", @"printf 'A\377B\n'; printf 'e\376\n' >&2" } }, wait: 30);
        Assert.Equal(HttpStatusCode.OK, r.Status);
        Assert.Equal([0x41, 0xFF, 0x42, 0x0A], await OutputAsync(r.Id!));
        Assert.Equal([0x65, 0xFE, 0x0A], await OutputAsync(r.Id!, "stderr"));

        var events = await _http.ReadEventsAsync(r.Id!);
        var stdout = events.Single(e => e.Name == "output" && e.Data!["stream"]!.GetValue<string>() == "stdout").Data!;
        Assert.Equal("A\uFFFDB", stdout["text"]!.GetValue<string>());
        Assert.Equal([0x41, 0xFF, 0x42], Convert.FromBase64String(stdout["base64"]!.GetValue<string>()));

        string transcript = await _http.GetStringAsync($"/v1/tasks/{r.Id}/transcript");
        var lines = transcript.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonNode.Parse(l)!).ToList();
        // The two pipes are read as they become ready: their order in the transcript is the order they were read in.
        Assert.Equal(["stderr", "stdout"], lines.Select(l => l["corral"]!.GetValue<string>()).Order());
        Assert.Equal("Qf9C", lines.Single(l => l["corral"]!.GetValue<string>() == "stdout")["base64"]!.GetValue<string>());

        var plain = await _http.CreateAsync(new { agent = "command", command = new[] { "echo", "plain ✓" } }, wait: 30);
        var e2 = (await _http.ReadEventsAsync(plain.Id!)).Single(e => e.Name == "output").Data!;
        Assert.Equal("plain ✓", e2["text"]!.GetValue<string>());
        Assert.Null(e2["base64"]); // valid UTF-8 needs no copy
    }

    [Fact(Timeout = 60_000)]
    public async Task An_over_long_line_is_events_in_fragments_and_stored_whole()
    {
        // 2.5 MiB without a newline until the end: events of at most 1 MiB, all but the last flagged.
        int length = 5 << 19;
        var r = await _http.CreateAsync(new { agent = "command", command = new[] { "bash", "-c", $"head -c {length} /dev/zero | tr '\\0' x; echo" } }, wait: 30);
        Assert.Equal(HttpStatusCode.OK, r.Status);
        var pieces = (await _http.ReadEventsAsync(r.Id!)).Where(e => e.Name == "output").Select(e => e.Data!).ToList();
        Assert.Equal([true, true, false], pieces.Select(p => p["fragment"]?.GetValue<bool>() ?? false));
        Assert.Equal(new string('x', length), string.Concat(pieces.Select(p => p["text"]!.GetValue<string>())));
        Assert.Equal(length + 1, (await OutputAsync(r.Id!)).Length);
    }

    [Fact(Timeout = 60_000)]
    public async Task Past_the_output_cap_the_task_runs_on_the_rest_is_not_stored_and_the_record_says_how_much_was_dropped()
    {
        var r = await _http.CreateAsync(new
        {
            agent = "command",
            command = new[] { "bash", "-c", "for i in $(seq 1000); do printf '%099d\\n' $i; done; echo the-end" },
            limits = new { maxOutputBytes = 1000 },
        }, wait: 60);
        Assert.Equal(HttpStatusCode.OK, r.Status);
        var record = r.Body!;
        Assert.Equal(1000, (await OutputAsync(r.Id!)).Length);
        Assert.Equal(1000, record["output"]!["storedBytes"]!.GetValue<long>());
        Assert.Equal(100_000 + 8 - 1000, record["output"]!["droppedBytes"]!.GetValue<long>());
        Assert.True(record["process"]!["stdoutTruncated"]!.GetValue<bool>());
        Assert.Equal(100_008, record["process"]!["stdoutBytes"]!.GetValue<long>());
        // The result still sees the end, and holds no more than the task may store.
        string text = record["result"]!["text"]!.GetValue<string>();
        Assert.EndsWith("the-end\n", text);
        Assert.Equal(1000, text.Length);
        var events = await _http.ReadEventsAsync(r.Id!);
        Assert.Contains(events, e => e.Name == "agent.notice" && e.Data!["kind"]!.GetValue<string>() == "output_truncated");
        Assert.Equal(10, events.Count(e => e.Name == "output"));
    }

    [Fact(Timeout = 60_000)]
    public async Task A_capped_claude_task_still_reads_its_result_line()
    {
        var r = await _http.CreateAsync(new { agent = "claude-code", prompt = "hello", limits = new { maxOutputBytes = 100 } }, wait: 60);
        Assert.Equal(HttpStatusCode.OK, r.Status);
        Assert.Equal("succeeded", r.TaskStatus);
        Assert.False(string.IsNullOrEmpty(r.Body!["result"]!["text"]!.GetValue<string>()));
        Assert.Equal(100, r.Body["output"]!["storedBytes"]!.GetValue<long>());
    }

    [Fact(Timeout = 60_000)]
    public async Task A_cap_above_the_server_maximum_is_refused()
    {
        var r = await _http.CreateAsync(new { agent = "command", command = new[] { "true" }, limits = new { maxOutputBytes = 1L << 40 } });
        Assert.Equal(HttpStatusCode.BadRequest, r.Status);
        Assert.Equal("limits.maxOutputBytes", r.Body!["errors"]![0]!["field"]!.GetValue<string>());
    }

    [Fact(Timeout = 120_000)]
    public async Task Output_is_on_disk_once_plus_a_few_bytes_a_line()
    {
        const long bytes = 20_000_000;
        var r = await _http.CreateAsync(new { agent = "command", command = new[] { "bash", "-c", $"yes $(printf %099d 0) | head -c {bytes}" } }, wait: 60);
        Assert.Equal(HttpStatusCode.OK, r.Status);
        long onDisk = new DirectoryInfo(Path.Combine(shared.Server.DataDirectory, "tasks", r.Id!)).EnumerateFiles("*", SearchOption.AllDirectories).Sum(f => f.Length);
        Assert.InRange(onDisk, bytes, (long)(bytes * 1.05) + 65536);
        Assert.Equal(bytes, (await OutputAsync(r.Id!)).Length);
    }
}
