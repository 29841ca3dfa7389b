using System.Text;
using Corral.Client.Events;
using Corral.Client.Tests.Support;

namespace Corral.Client.Tests;

/// <summary>Every call of the client against a real server, with tasks of the command agent.</summary>
public sealed class TaskCallTests(SharedServer shared) : IClassFixture<SharedServer>
{
    private readonly CorralClient _client = shared.Server.Client();

    private static CancellationToken Token => TestContext.Current.CancellationToken;

    [Fact(Timeout = 120_000)]
    public async Task I_can_create_a_task_and_read_its_record()
    {
        var created = await _client.CreateTaskAsync(Commands.Bash("echo hi"), Token);
        Assert.StartsWith("tsk_", created.Id);
        Assert.False(created.IsTerminal && created.Status == CorralTaskStatus.Unknown);
        Assert.StartsWith("corral-client-", created.IdempotencyKey); // made up by the client: the create was retry-safe

        var done = await _client.WaitForTaskAsync(created.Id, Commands.Wait, Token);
        Assert.Equal(CorralTaskStatus.Succeeded, done.Status);
        Assert.Equal("command", done.Agent);
        Assert.Equal("hi\n", done.Result?.Text);
        Assert.Equal(0, done.Process?.ExitCode);
        Assert.Equal(["bash", "-c", "echo hi"], done.Process!.Command);
        Assert.Equal(3, done.Output?.StoredBytes);
        Assert.NotNull(done.EndedAt);
        // The raw record keeps what the client does not model.
        Assert.True(done.Raw.GetProperty("process").TryGetProperty("resources", out _));
        var again = await _client.GetTaskAsync(created.Id, Token);
        Assert.Equal((done.Id, done.Status, done.EndedAt, done.Result), (again.Id, again.Status, again.EndedAt, again.Result));
    }

    [Fact(Timeout = 120_000)]
    public async Task The_same_idempotency_key_gives_the_same_task()
    {
        var request = Commands.Bash("echo once") with { IdempotencyKey = "key-" + Guid.NewGuid().ToString("N") };
        var first = await _client.CreateTaskAsync(request, Token);
        var second = await _client.CreateTaskAsync(request, Token);
        Assert.Equal(first.Id, second.Id);
        Assert.Equal(request.IdempotencyKey, second.IdempotencyKey);
    }

    [Fact(Timeout = 120_000)]
    public async Task I_can_run_a_task_to_its_end_with_the_server_waiting()
    {
        var ok = await _client.RunTaskAsync(Commands.Bash("echo done"), Commands.Wait, Token);
        Assert.Equal(CorralTaskStatus.Succeeded, ok.Status);
        Assert.Equal("done\n", ok.Result?.Text);

        // An outcome that is not success is a record, not an exception (?wait answers 422 with it).
        var failed = await _client.RunTaskAsync(Commands.Bash("echo oops >&2; exit 3"), Commands.Wait, Token);
        Assert.Equal(CorralTaskStatus.Failed, failed.Status);
        Assert.Equal("agent_error", failed.Error?.Code);
        Assert.Equal(3, failed.Process?.ExitCode);

        var timedOut = await _client.RunTaskAsync(Commands.Bash("sleep 30") with { Limits = new TaskLimits { TimeoutSeconds = 0.5 } }, Commands.Wait, Token);
        Assert.Equal(CorralTaskStatus.TimedOut, timedOut.Status);
        Assert.Equal("timeout", timedOut.Error?.Code);
    }

    [Fact(Timeout = 120_000)]
    public async Task A_run_longer_than_one_server_wait_goes_on_waiting()
    {
        // With a key, the same POST waits again; without one, the client polls the task.
        using var keyed = shared.Server.Client(o => o.MaxServerWait = TimeSpan.FromSeconds(0.5));
        var a = await keyed.RunTaskAsync(Commands.Bash("sleep 1.5; echo late"), Commands.Wait, Token);
        Assert.Equal(CorralTaskStatus.Succeeded, a.Status);

        using var keyless = shared.Server.Client(o => { o.MaxServerWait = TimeSpan.FromSeconds(0.5); o.GenerateIdempotencyKeys = false; });
        var b = await keyless.RunTaskAsync(Commands.Bash("sleep 1.5; echo late"), Commands.Wait, Token);
        Assert.Equal(CorralTaskStatus.Succeeded, b.Status);
        Assert.Null(b.IdempotencyKey);
        Assert.Equal("late\n", b.Result?.Text);
    }

    [Fact(Timeout = 120_000)]
    public async Task A_wait_that_ends_first_returns_the_running_task()
    {
        var task = await _client.RunTaskAsync(Commands.Bash("sleep 20"), TimeSpan.FromSeconds(0.5), Token);
        Assert.False(task.IsTerminal);
        var polled = await _client.WaitForTaskAsync(task.Id, TimeSpan.FromSeconds(0.3), Token);
        Assert.Equal(CorralTaskStatus.Running, polled.Status);
        await _client.CancelTaskAsync(task.Id, Token);
    }

    [Fact(Timeout = 120_000)]
    public async Task I_can_list_tasks_page_by_page()
    {
        // The tests of a class run one at a time: nothing else creates tasks on this server meanwhile.
        var ids = new List<string>();
        for (int i = 0; i < 5; i++)
            ids.Add((await _client.RunTaskAsync(Commands.Bash($"echo {i}"), Commands.Wait, Token)).Id);

        var page = await _client.GetTaskPageAsync(new TaskQuery { Limit = 2 }, Token);
        Assert.Equal(2, page.Items.Count);
        Assert.NotNull(page.NextCursor);
        Assert.Equal(ids[4], page.Items[0].Id); // newest first

        var newest = new List<string>();
        await foreach (var t in _client.ListTasksAsync(new TaskQuery { Limit = 2 }, Token))
        {
            newest.Add(t.Id);
            if (newest.Count == 5)
                break;
        }

        Assert.Equal(ids.AsEnumerable().Reverse(), newest);

        var succeeded = await _client.GetTaskPageAsync(new TaskQuery { Status = CorralTaskStatus.Succeeded, Limit = 500 }, Token);
        Assert.All(succeeded.Items, t => Assert.Equal(CorralTaskStatus.Succeeded, t.Status));
        Assert.Contains(succeeded.Items, t => t.Id == ids[0]);
    }

    [Fact(Timeout = 120_000)]
    public async Task I_can_cancel_a_running_task_and_delete_it_once_it_ended()
    {
        var task = await _client.CreateTaskAsync(Commands.Bash("echo started; sleep 60"), Token);
        await Proc.WaitForAsync(async () => (await _client.GetTaskAsync(task.Id, Token)).Status == CorralTaskStatus.Running,
            TimeSpan.FromSeconds(30), "the task to run");

        var stopping = await _client.CancelTaskAsync(task.Id, Token);
        Assert.Equal(task.Id, stopping.Id);
        var ended = await _client.WaitForTaskAsync(task.Id, Commands.Wait, Token);
        Assert.Equal(CorralTaskStatus.Cancelled, ended.Status);
        Assert.Equal(CorralTaskStatus.Cancelled, (await _client.CancelTaskAsync(task.Id, Token)).Status); // idempotent

        await _client.DeleteTaskAsync(task.Id, Token);
        await Assert.ThrowsAsync<CorralNotFoundException>(() => _client.GetTaskAsync(task.Id, Token));
    }

    [Fact(Timeout = 120_000)]
    public async Task I_can_download_the_transcript_and_the_exact_output_bytes()
    {
        var task = await _client.RunTaskAsync(Commands.Bash(@"printf 'one\ntwo\n'; printf 'bad \xff\n' >&2"), Commands.Wait, Token);
        Assert.Equal(CorralTaskStatus.Succeeded, task.Status);

        Assert.Equal("one\ntwo\n"u8.ToArray(), await _client.GetOutputAsync(task.Id, OutputStreamKind.Stdout, Token));
        Assert.Equal(new byte[] { (byte)'b', (byte)'a', (byte)'d', (byte)' ', 0xff, (byte)'\n' },
            await _client.GetOutputAsync(task.Id, OutputStreamKind.Stderr, Token));

        await using var transcript = await _client.OpenTranscriptAsync(task.Id, Token);
        using var reader = new StreamReader(transcript, Encoding.UTF8);
        var lines = new List<string>();
        while (await reader.ReadLineAsync(Token) is { } line)
            lines.Add(line);
        Assert.Contains(lines, l => l.Contains("\"corral\":\"stdout\"") && l.Contains("\"text\":\"one\""));
        Assert.Contains(lines, l => l.Contains("\"corral\":\"stderr\""));

        await Assert.ThrowsAsync<CorralNotFoundException>(() => _client.OpenTranscriptAsync("tsk_nope", Token));
    }

    [Fact(Timeout = 120_000)]
    public async Task I_can_follow_a_task_as_typed_events_that_end_with_task_end()
    {
        var task = await _client.CreateTaskAsync(Commands.Bash(@"echo first; printf 'raw \xfe\n'; echo second >&2"), Token);
        var events = await _client.CollectAsync(task.Id);

        Assert.Equal(Enumerable.Range(1, events.Count).Select(i => (long?)i), events.Select(e => e.Id));
        Assert.Equal(CorralTaskStatus.Queued, Assert.IsType<TaskStatusEvent>(events[0]).Status);
        var output = events.OfType<OutputEvent>().ToList();
        Assert.Contains(output, o => o is { Stream: OutputStreamKind.Stdout, Text: "first" });
        Assert.Contains(output, o => o is { Stream: OutputStreamKind.Stderr, Text: "second" });
        var raw = Assert.Single(output, o => o.Base64 is not null);
        Assert.Equal(new byte[] { (byte)'r', (byte)'a', (byte)'w', (byte)' ', 0xfe }, raw.Bytes);
        var result = Assert.IsType<TaskResultEvent>(events[^2]);
        Assert.Equal(CorralTaskStatus.Succeeded, result.Task.Status);
        var end = Assert.IsType<TaskEndEvent>(events[^1]);
        Assert.Equal(CorralTaskStatus.Succeeded, end.Status);
        Assert.Equal("task.end", end.Name);

        // From an event on: only what came after it.
        Assert.Equal(events.Skip(3).Select(e => e.Id), (await _client.CollectAsync(task.Id, after: 3)).Select(e => e.Id));
    }

    [Fact(Timeout = 120_000)]
    public async Task I_can_ask_whether_the_server_is_alive_and_ready()
    {
        Assert.True(await _client.IsAliveAsync(Token));
        var ready = await _client.GetReadinessAsync(Token);
        Assert.True(ready.IsReady);
        Assert.Contains(ready.Agents, a => a is { Agent: CorralAgents.Command, Available: true });
        Assert.Contains(ready.Agents, a => a is { Agent: CorralAgents.ClaudeCode, Available: false, Reason: not null });
    }
}
