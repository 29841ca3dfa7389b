using System.Net;
using System.Text.Json.Nodes;
using Corral.Server.Tests.Support;

namespace Corral.Server.Tests.Running;

/// <summary>Cancel, deadlines, and how ?wait maps each outcome to a status code.</summary>
public sealed class LifecycleTests(SharedServer shared) : IClassFixture<SharedServer>
{
    private readonly HttpClient _http = shared.Server.Http;

    private async Task<string> StartRunningAsync(string prompt, object? limits = null)
    {
        var r = await _http.ClaudeAsync(prompt, wait: null, limits: limits);
        Assert.Equal(HttpStatusCode.Accepted, r.Status);
        Assert.Contains(r.TaskStatus, new[] { "queued", "running" });
        // Running, and the agent has started its turn (so it reads stdin).
        var events = await _http.ReadEventsAsync(r.Id!, stopAfter: 3);
        Assert.Equal("agent.init", events[2].Name);
        return r.Id!;
    }

    [Fact(Timeout = 120_000)]
    public async Task Cancel_interrupts_first_so_the_partial_result_and_cost_are_kept()
    {
        string id = await StartRunningAsync("slow");
        var cancel = await _http.CancelAsync(id);
        Assert.Equal(HttpStatusCode.Accepted, cancel.Status);
        Assert.Equal(id, cancel.Id);

        var task = await _http.WaitForEndAsync(id);
        Assert.Equal("cancelled", task["status"]!.GetValue<string>());
        Assert.Equal("cancelled", task["error"]!["code"]!.GetValue<string>());
        Assert.Equal("error_during_execution", task["result"]!["subtype"]!.GetValue<string>());
        Assert.Equal("aborted_streaming", task["result"]!["terminalReason"]!.GetValue<string>());
        Assert.Equal(0.005, task["costUsd"]!.GetValue<double>());
        Assert.Null(task["process"]!["signal"]); // it exited by itself after the interrupt: no signal was needed

        var events = await _http.ReadEventsAsync(id);
        Assert.Contains(events, e => e.Name == "agent.notice" && e.Data!["kind"]!.GetValue<string>() == "interrupted");
        Assert.Equal("task.end", events[^1].Name);

        // Idempotent: a second cancel returns the final record.
        var again = await _http.CancelAsync(id);
        Assert.Equal(HttpStatusCode.OK, again.Status);
        Assert.Equal("cancelled", again.TaskStatus);
    }

    [Fact(Timeout = 120_000)]
    public async Task Cancel_of_an_agent_that_ignores_interrupt_stdin_and_sigterm_ends_with_sigkill()
    {
        string id = await StartRunningAsync("stubborn");
        Assert.Equal(HttpStatusCode.Accepted, (await _http.CancelAsync(id)).Status);
        var task = await _http.WaitForEndAsync(id, TimeSpan.FromSeconds(60));
        Assert.Equal("cancelled", task["status"]!.GetValue<string>());
        Assert.Equal(9, task["process"]!["signal"]!.GetValue<int>());
        Assert.Null(task["result"]);
    }

    [Fact(Timeout = 120_000)]
    public async Task Cancel_of_an_unknown_task_is_404_problem()
    {
        var r = await _http.CancelAsync("tsk_nope");
        Assert.Equal(HttpStatusCode.NotFound, r.Status);
        Assert.Equal("application/problem+json", r.Message.Content.Headers.ContentType!.MediaType);
        Assert.Equal("not_found", r.Body!["code"]!.GetValue<string>());
        Assert.Equal(HttpStatusCode.NotFound, (await _http.GetTaskAsync("tsk_nope")).Status);
        Assert.Equal(HttpStatusCode.NotFound, (await _http.GetAsync("/v1/tasks/tsk_nope/events")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await _http.GetAsync("/v1/tasks/tsk_nope/transcript")).StatusCode);
    }

    [Fact(Timeout = 120_000)]
    public async Task A_command_past_its_timeout_is_signalled_at_once_and_timed_out_even_if_it_would_have_exited_zero_within_the_grace()
    {
        // stdin closed after its input: no grace for closing it. Before, `sleep 3` outlived a 1 s timeout by the 5 s
        // close-input grace, exited 0 within it and was reported succeeded.
        await using var server = await TestServer.StartAsync(s => s["Corral:CloseInputGraceSeconds"] = "5");
        var r = await server.Http.CreateAsync(new { agent = "command", command = new[] { "sleep", "3" }, limits = new { timeoutSeconds = 1 } }, wait: 60);
        Assert.Equal("timedOut", r.TaskStatus);
        Assert.Equal("timeout", r.Body!["error"]!["code"]!.GetValue<string>());
    }

    [Fact(Timeout = 60_000)]
    public async Task A_command_that_exits_zero_on_the_timeouts_signal_is_timed_out()
    {
        var r = await _http.CreateAsync(new { agent = "command", command = new[] { "bash", "-c", "trap 'exit 0' TERM; while :; do sleep 0.05; done" }, limits = new { timeoutSeconds = 1 } }, wait: 60);
        Assert.Equal("timedOut", r.TaskStatus);
        Assert.Equal("timeout", r.Body!["error"]!["code"]!.GetValue<string>());
    }

    [Fact(Timeout = 120_000)]
    public async Task Timeout_with_steady_output_is_504_timeout()
    {
        var r = await _http.ClaudeAsync("slow", wait: 60, limits: new { timeoutSeconds = 1.5, stallTimeoutSeconds = 30 });
        Assert.Equal(HttpStatusCode.GatewayTimeout, r.Status);
        Assert.Equal("timedOut", r.TaskStatus);
        Assert.Equal("timeout", r.ErrorCode);
        Assert.Equal("error_during_execution", r.Body!["result"]!["subtype"]!.GetValue<string>()); // interrupted, result kept
    }

    [Fact(Timeout = 120_000)]
    public async Task Silence_is_504_stall()
    {
        var r = await _http.ClaudeAsync("silent", wait: 60, limits: new { timeoutSeconds = 60, stallTimeoutSeconds = 1 });
        Assert.Equal(HttpStatusCode.GatewayTimeout, r.Status);
        Assert.Equal("timedOut", r.TaskStatus);
        Assert.Equal("stall", r.ErrorCode);
    }

    [Fact(Timeout = 120_000)]
    public async Task Wait_that_ends_first_returns_202_with_the_current_record()
    {
        var r = await _http.ClaudeAsync("sleep:3000", wait: 0.3);
        Assert.Equal(HttpStatusCode.Accepted, r.Status);
        Assert.Contains(r.TaskStatus, new[] { "queued", "running" });
        Assert.Equal($"/v1/tasks/{r.Id}", r.Message.Headers.Location!.OriginalString);
        var task = await _http.WaitForEndAsync(r.Id!);
        Assert.Equal("succeeded", task["status"]!.GetValue<string>());
    }

    [Fact(Timeout = 120_000)]
    public async Task Wait_on_a_task_cancelled_meanwhile_is_409()
    {
        // The idempotency key lets a second caller find the task the first one is waiting on.
        var body = new { agent = "claude-code", prompt = "slow", idempotencyKey = "cancel-while-waiting-" + Guid.NewGuid() };
        var waiting = _http.CreateAsync(body, wait: 60);
        var same = await _http.CreateAsync(body);
        Assert.Contains(same.Status, new[] { HttpStatusCode.OK, HttpStatusCode.Accepted }); // whichever request came first created it
        await _http.ReadEventsAsync(same.Id!, stopAfter: 3);
        Assert.Equal(HttpStatusCode.Accepted, (await _http.CancelAsync(same.Id!)).Status);

        var r = await waiting;
        Assert.Equal(HttpStatusCode.Conflict, r.Status);
        Assert.Equal(same.Id, r.Id);
        Assert.Equal("cancelled", r.TaskStatus);
    }

    [Fact(Timeout = 120_000)]
    public async Task Command_agent_output_is_events_and_the_exit_code_decides()
    {
        var ok = await _http.CreateAsync(new { agent = "command", command = new[] { "sh", "-c", "echo one; echo two >&2; cat" }, prompt = "from stdin\n" }, wait: 30);
        Assert.Equal(HttpStatusCode.OK, ok.Status);
        Assert.Equal("one\nfrom stdin\n", ok.Body!["result"]!["text"]!.GetValue<string>());
        var events = await _http.ReadEventsAsync(ok.Id!);
        var output = events.Where(e => e.Name == "output").Select(e => (e.Data!["stream"]!.GetValue<string>(), e.Data["text"]!.GetValue<string>())).ToList();
        Assert.Contains(("stdout", "one"), output);
        Assert.Contains(("stderr", "two"), output);
        Assert.Contains(("stdout", "from stdin"), output);

        var bad = await _http.CreateAsync(new { agent = "command", command = new[] { "sh", "-c", "exit 3" } }, wait: 30);
        Assert.Equal((HttpStatusCode)422, bad.Status);
        Assert.Equal("agent_error", bad.ErrorCode);
        Assert.Equal(3, bad.Body!["process"]!["exitCode"]!.GetValue<int>());

        var missing = await _http.CreateAsync(new { agent = "command", command = new[] { "/no/such/program" } }, wait: 30);
        Assert.Equal(HttpStatusCode.UnprocessableEntity, missing.Status); // not retryable: the same request fails the same way
        Assert.Equal("spawn_failed", missing.ErrorCode);
    }

    [Fact(Timeout = 120_000)]
    public async Task Command_timeout_runs_the_process_ladder()
    {
        var r = await _http.CreateAsync(new { agent = "command", command = new[] { "sleep", "300" }, limits = new { timeoutSeconds = 0.5 } }, wait: 30);
        Assert.Equal(HttpStatusCode.GatewayTimeout, r.Status);
        Assert.Equal("timeout", r.ErrorCode);
        Assert.Equal(15, r.Body!["process"]!["signal"]!.GetValue<int>());
    }
}
