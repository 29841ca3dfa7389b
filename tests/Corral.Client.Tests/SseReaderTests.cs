using System.Text;
using Corral.Client.Events;
using Corral.Client.Internal;

namespace Corral.Client.Tests;

/// <summary>The SSE wire format and the typed events made from it, from bytes.</summary>
public sealed class SseReaderTests
{
    private static async Task<List<SseFrame>> Frames(string wire, TimeSpan? idle = null)
    {
        var frames = new List<SseFrame>();
        await foreach (var f in SseReader.ReadAsync(new MemoryStream(Encoding.UTF8.GetBytes(wire)), idle ?? TimeSpan.FromSeconds(5), CancellationToken.None))
            frames.Add(f);
        return frames;
    }

    [Fact]
    public async Task Frames_end_at_a_blank_line_whatever_the_line_terminator()
    {
        var frames = await Frames("id: 1\nevent: a\ndata: {\"x\":1}\n\nid: 2\r\nevent: b\r\ndata: x\r\n\r\nid: 3\revent: c\rdata: y\r\r");
        Assert.Equal([new SseFrame("1", "a", "{\"x\":1}"), new SseFrame("2", "b", "x"), new SseFrame("3", "c", "y")], frames);
    }

    [Fact]
    public async Task Comments_are_skipped_and_data_lines_are_joined()
    {
        var frames = await Frames(": keep-alive\n\ndata: one\ndata:two\ndata\n\n: keep-alive\n\nevent: last\ndata: z\n");
        Assert.Equal([new SseFrame(null, "message", "one\ntwo\n")], frames); // a frame without its blank line is not dispatched
    }

    [Fact]
    public async Task Silence_longer_than_the_idle_timeout_is_an_error()
    {
        var pipe = new System.IO.Pipes.AnonymousPipeServerStream(System.IO.Pipes.PipeDirection.In);
        await Assert.ThrowsAsync<SseReader.IdleException>(async () =>
        {
            await foreach (var _ in SseReader.ReadAsync(pipe, TimeSpan.FromMilliseconds(200), CancellationToken.None))
            {
            }
        });
    }

    [Fact]
    public void Events_are_typed_by_name_and_keep_their_data()
    {
        var status = Assert.IsType<TaskStatusEvent>(EventParser.Parse(new SseFrame("4", "task.status", "{\"status\":\"timedOut\",\"at\":\"2026-12-01T10:00:00+00:00\",\"new\":1}")));
        Assert.Equal((4L, CorralTaskStatus.TimedOut), (status.Id!.Value, status.Status));
        Assert.Equal(1, status.Data.GetProperty("new").GetInt32());

        var end = Assert.IsType<TaskEndEvent>(EventParser.Parse(new SseFrame(null, "task.end", "{\"status\":\"failed\",\"error\":{\"code\":\"agent_error\",\"message\":\"m\"}}")));
        Assert.Null(end.Id);
        Assert.Equal(new TaskError("agent_error", "m"), end.Error);

        var text = Assert.IsType<AgentTextEvent>(EventParser.Parse(new SseFrame("5", "agent.text", "{\"messageId\":\"m1\",\"text\":\"hello\"}")));
        Assert.Equal("hello", text.Text);
        var tool = Assert.IsType<AgentToolUseEvent>(EventParser.Parse(new SseFrame("6", "agent.tool_use", "{\"toolUseId\":\"t\",\"name\":\"Bash\",\"input\":{\"command\":\"ls\"}}")));
        Assert.Equal("ls", tool.Input.GetProperty("command").GetString());
        var init = Assert.IsType<AgentInitEvent>(EventParser.Parse(new SseFrame("1", "agent.init", "{\"sessionId\":\"s\",\"tools\":[\"Bash\"],\"mcp\":[{\"name\":\"fs\",\"status\":\"connected\"}]}")));
        Assert.Equal(new McpServerState("fs", "connected"), Assert.Single(init.McpServers));
        Assert.IsType<AgentNoticeEvent>(EventParser.Parse(new SseFrame("7", "agent.notice", "{\"kind\":\"api_retry\"}")));
        Assert.IsType<AgentToolResultEvent>(EventParser.Parse(new SseFrame("8", "agent.tool_result", "{\"toolUseId\":\"t\",\"isError\":true}")));
        Assert.IsType<AgentStderrEvent>(EventParser.Parse(new SseFrame("9", "agent.stderr", "{\"text\":\"x\"}")));

        var unknown = Assert.IsType<UnknownEvent>(EventParser.Parse(new SseFrame("10", "agent.telepathy", "{\"mind\":1}")));
        Assert.Equal("agent.telepathy", unknown.Name);
    }
}
