using System.Text;
using Corral.Cli.Tests.Support;
using Corral.Processes;

namespace Corral.Cli.Tests;

/// <summary>Output passes through byte for byte, and an escapee holding stdout neither delays corral nor survives it.</summary>
public sealed class RunOutputTests
{
    private static readonly byte[] StdoutPrefix = [0xff, 0xfe, 0x80, (byte)'\n', 0xc3, 0x28, 0x00, (byte)'x'];
    private static readonly byte[] StderrBytes = [0xc0, 0xaf, (byte)' ', (byte)'e', (byte)'r', (byte)'r', 0xed, 0xa0, 0x80, (byte)'\n'];

    [Theory(Timeout = 120_000)]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Escapee_holding_stdout_neither_delays_corral_nor_loses_a_byte_nor_survives(bool fallback)
    {
        using var scratch = new Scratch("corral-cli-test-");
        byte[] mebibyte = new byte[1 << 20];
        new Random(42).NextBytes(mebibyte);
        File.WriteAllBytes(scratch.File("big.bin"), mebibyte);
        string exitedAt = scratch.File("exited-at");

        // Non-UTF-8 bytes on both streams, an escapee in its own session holding stdout, 1 MiB right before exit.
        string script =
            $"printf '{Escape(StdoutPrefix)}'; printf '{Escape(StderrBytes)}' >&2; " +
            $"setsid sleep 300 & echo $! > {scratch.File("escapee.pid")}; " +
            $"cat {scratch.File("big.bin")}; date +%s%N > {exitedAt}; exit 7";
        string[] args = fallback ? ["run", "--fallback", "--", "/bin/bash", "-c", script] : ["run", "--", "/bin/bash", "-c", script];

        var run = await CorralCli.RunAsync(args);

        Assert.Equal(7, run.ExitCode);
        Assert.Equal([.. StdoutPrefix, .. mebibyte], run.Stdout);
        Assert.Equal(StderrBytes, run.Stderr);

        // From the child's last act to corral's own exit: generous next to the escapee's 300 s.
        var childExit = DateTimeOffset.FromUnixTimeMilliseconds(long.Parse(File.ReadAllText(exitedAt).Trim()) / 1_000_000);
        var lag = run.FinishedAt - childExit;
        Assert.True(lag < TimeSpan.FromSeconds(2), $"corral exited {lag.TotalMilliseconds:0} ms after the child");

        int escapee = await scratch.PidAsync("escapee.pid");
        Assert.False(Proc.IsAlive(escapee), $"escapee {escapee} survived corral");
    }

    [Fact(Timeout = 120_000)]
    public async Task Redirected_stdin_reaches_the_child()
    {
        var run = await CorralCli.RunAsync(["run", "--", "/bin/cat"], InputSource.FromBytes(StdoutPrefix));

        Assert.Equal(0, run.ExitCode);
        Assert.Equal(StdoutPrefix, run.Stdout);
    }

    [Fact(Timeout = 120_000)]
    public async Task A_child_that_never_reads_stdin_does_not_block_completion()
    {
        // The harness keeps corral's stdin open and never writes: corral's forwarding must not hold it up.
        var clock = System.Diagnostics.Stopwatch.StartNew();
        await using var tree = CorralCli.Start(["run", "--", "/bin/sh", "-c", "echo done"], InputSource.Pipe);
        var run = await CorralCli.FinishAsync(tree, clock);

        Assert.Equal(0, run.ExitCode);
        Assert.Equal("done\n", run.StdoutText);
    }

    [Fact(Timeout = 120_000)]
    public async Task A_closed_reader_stops_the_tree()
    {
        // `yes` would write forever; once head has its bytes, corral's stdout is a broken pipe and the tree is stopped.
        string corral = string.Join(' ', CorralCli.Spec([]).Arguments.Prepend(CorralCli.Spec([]).FileName).Select(Quote));
        var result = await ProcessTree.RunAsync(new ProcessSpec("/bin/bash", "-c",
            $"{corral} run -- yes | head -c 100 > /dev/null; echo \"corral=${{PIPESTATUS[0]}}\"")
        {
            Containment = ContainmentMode.Session,
            Timeout = CorralCli.HarnessDeadline,
        }, TestContext.Current.CancellationToken);

        Assert.Equal(ExitReason.Exited, result.Outcome.Reason);
        Assert.Equal("corral=143\n", result.StandardOutput);
    }

    private static string Escape(byte[] bytes)
    {
        var s = new StringBuilder();
        foreach (byte b in bytes)
            s.Append($"\\{Convert.ToString(b, 8).PadLeft(3, '0')}");
        return s.ToString();
    }

    private static string Quote(string s) => "'" + s.Replace("'", "'\\''") + "'";
}
