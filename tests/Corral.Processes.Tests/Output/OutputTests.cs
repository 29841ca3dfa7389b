using System.Diagnostics;
using System.Text;
using Corral.Processes.Tests.Support;

namespace Corral.Processes.Tests.Output;

public class OutputTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact(Timeout = 120_000)]
    public async Task Lines_of_both_streams_are_tagged_and_in_order_per_stream()
    {
        // Order across the two pipes depends on scheduling; order within each stream is guaranteed.
        await using var tree = ProcessTree.Start(new ProcessSpec("/bin/sh", "-c", "echo one; echo two >&2; printf 'three\\r\\nfour'; echo five >&2"), Ct);
        var lines = new List<OutputLine>();
        await foreach (var line in tree.ReadLinesAsync(Ct))
            lines.Add(line);
        Assert.Equal(["one", "three", "four"], lines.Where(l => l.Stream == OutputStream.StandardOutput).Select(l => l.Text));
        Assert.Equal(["two", "five"], lines.Where(l => l.Stream == OutputStream.StandardError).Select(l => l.Text));
    }

    [Fact(Timeout = 120_000)]
    public async Task A_line_longer_than_the_maximum_is_split_and_flagged_on_a_character_boundary()
    {
        // 10 three-byte characters = 30 bytes, with a 16-byte limit.
        var spec = new ProcessSpec("/bin/sh", "-c", "printf '€€€€€€€€€€\\nshort\\n'") { Limits = new OutputLimits { MaxLineLength = 16 } };
        await using var tree = ProcessTree.Start(spec, Ct);
        var lines = new List<OutputLine>();
        await foreach (var line in tree.ReadLinesAsync(Ct))
            lines.Add(line);
        Assert.Equal(["€€€€€", "€€€€€", "short"], lines.Select(l => l.Text));
        Assert.Equal([true, false, false], lines.Select(l => l.IsFragment));
    }

    [Fact(Timeout = 120_000)]
    public async Task Raw_chunks_and_buffered_bytes_keep_non_UTF8_bytes_intact()
    {
        byte[] expected = [0xff, 0xfe, 0x00, 0x80, (byte)'\n', 0xc3];
        var spec = new ProcessSpec("/usr/bin/printf", "\\377\\376\\000\\200\\n\\303");
        var result = await ProcessTree.RunAsync(spec, Ct);
        Assert.Equal(expected, result.StandardOutputBytes.ToArray());

        await using var tree = ProcessTree.Start(spec, Ct);
        var raw = new List<byte>();
        await foreach (var chunk in tree.ReadChunksAsync(Ct))
            raw.AddRange(chunk.Bytes.ToArray());
        Assert.Equal(expected, raw);
    }

    [Fact(Timeout = 120_000)]
    public async Task ToStream_passes_raw_bytes_through_as_they_arrive()
    {
        var sink = new MemoryStream();
        var errors = new MemoryStream();
        var result = await ProcessTree.RunAsync(new ProcessSpec("/bin/sh", "-c", "printf 'a\\377b'; printf 'e' >&2")
        {
            StandardOutput = OutputTarget.ToStream(sink),
            StandardError = OutputTarget.ToStream(errors),
        }, Ct);
        Assert.Equal(new byte[] { (byte)'a', 0xff, (byte)'b' }, sink.ToArray());
        Assert.Equal("e"u8.ToArray(), errors.ToArray());
        Assert.Equal(3, result.Outcome.StandardOutputBytes);
        Assert.True(result.StandardOutputBytes.IsEmpty);
    }

    [Fact(Timeout = 120_000)]
    public async Task A_stream_target_that_fails_is_reported_and_the_pipe_is_still_drained_to_the_end()
    {
        // The stream takes one write, then fails as a closed terminal would; 4 MiB more follow, then a line on stderr.
        var failing = new FailingStream();
        var errors = new MemoryStream();
        var result = await ProcessTree.RunAsync(new ProcessSpec("/bin/sh", "-c", "printf 0123456789; head -c 4194304 /dev/zero; echo end >&2")
        {
            StandardOutput = OutputTarget.ToStream(failing),
            StandardError = OutputTarget.ToStream(errors),
        }, Ct);

        Assert.Equal(ExitReason.Exited, result.Outcome.Reason);
        Assert.Equal(0, result.Outcome.ExitCode);
        Assert.Equal(10 + 4194304, result.Outcome.StandardOutputBytes);
        Assert.StartsWith("0123456789", Encoding.ASCII.GetString(failing.Taken.ToArray()));
        Assert.True(failing.Taken.Length < 10 + 4194304, "the writes after the failure were discarded");
        Assert.Equal("end\n"u8.ToArray(), errors.ToArray());
        Assert.Equal("stdout: IOException: Broken pipe", result.Outcome.OutputError);
    }

    [Fact(Timeout = 120_000)]
    public async Task An_outcome_whose_targets_took_every_byte_has_no_output_error()
    {
        var result = await ProcessTree.RunAsync(new ProcessSpec("/bin/sh", "-c", "echo out; echo err >&2")
        {
            StandardOutput = OutputTarget.ToStream(new MemoryStream()),
        }, Ct);
        Assert.Null(result.Outcome.OutputError);
    }

    /// <summary>Takes its first write, then throws as a write to a closed pipe does.</summary>
    private sealed class FailingStream : Stream
    {
        public MemoryStream Taken { get; } = new();

        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => Taken.Length;
        public override long Position { get => Taken.Length; set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count)
        {
            if (Taken.Length > 0)
                throw new IOException("Broken pipe");
            Taken.Write(buffer, offset, count);
        }
    }

    [Fact(Timeout = 120_000)]
    public async Task Both_pipes_are_drained_concurrently_so_a_full_stderr_never_blocks_the_child()
    {
        // 8 MiB to stderr first, then stdout: a reader that did stdout to EOF first would deadlock.
        var result = await ProcessTree.RunAsync(new ProcessSpec("/bin/sh", "-c", "head -c 8388608 /dev/zero >&2; echo done"), Ct);
        Assert.Equal(8388608, result.Outcome.StandardErrorBytes);
        Assert.Equal("done\n", result.StandardOutput);
    }

    [Fact(Timeout = 120_000)]
    public async Task Overflow_drop_newest_keeps_the_head_and_flags_truncation()
    {
        var result = await ProcessTree.RunAsync(new ProcessSpec("/bin/sh", "-c", "seq 1 100000")
        {
            Limits = new OutputLimits { MaxBufferedBytes = 1000, Overflow = OverflowPolicy.DropNewest },
        }, Ct);
        Assert.Equal(1000, result.StandardOutputBytes.Length);
        Assert.StartsWith("1\n2\n3\n", result.StandardOutput);
        Assert.True(result.Outcome.StandardOutputTruncated);
        Assert.False(result.Outcome.StandardErrorTruncated);
        Assert.Equal(588895, result.Outcome.StandardOutputBytes);
    }

    [Fact(Timeout = 120_000)]
    public async Task Overflow_drop_oldest_keeps_the_tail()
    {
        var result = await ProcessTree.RunAsync(new ProcessSpec("/bin/sh", "-c", "seq 1 100000")
        {
            Limits = new OutputLimits { MaxBufferedBytes = 1000, Overflow = OverflowPolicy.DropOldest },
        }, Ct);
        Assert.InRange(result.StandardOutputBytes.Length, 1, 1000);
        Assert.EndsWith("99999\n100000\n", result.StandardOutput);
        Assert.True(result.Outcome.StandardOutputTruncated);
    }

    [Fact(Timeout = 120_000)]
    public async Task Overflow_wait_applies_backpressure_and_loses_nothing()
    {
        await using var tree = ProcessTree.Start(new ProcessSpec("/bin/sh", "-c", "seq 1 200000")
        {
            Limits = new OutputLimits { MaxBufferedBytes = 4096, Overflow = OverflowPolicy.Wait },
        }, Ct);
        long count = 0, last = 0;
        await foreach (var line in tree.ReadLinesAsync(Ct))
        {
            count++;
            last = long.Parse(line.Text);
        }

        var outcome = await tree.Completion;
        Assert.Equal(200000, count);
        Assert.Equal(200000, last);
        Assert.False(outcome.StandardOutputTruncated);
    }

    [Fact(Timeout = 120_000)]
    public async Task RunAsync_with_overflow_wait_collects_more_than_the_limit_without_deadlock()
    {
        var result = await ProcessTree.RunAsync(new ProcessSpec("/bin/sh", "-c", "seq 1 100000")
        {
            Limits = new OutputLimits { MaxBufferedBytes = 4096, Overflow = OverflowPolicy.Wait },
        }, Ct);
        Assert.Equal(588895, result.StandardOutputBytes.Length);
        Assert.EndsWith("\n100000\n", result.StandardOutput);
        Assert.False(result.Outcome.StandardOutputTruncated);
    }

    [Fact(Timeout = 120_000)]
    public async Task Output_written_just_before_exit_is_never_lost()
    {
        for (int i = 0; i < 20; i++)
        {
            var result = await ProcessTree.RunAsync(new ProcessSpec("/bin/sh", "-c", "head -c 300000 /dev/zero | tr '\\0' y; echo; echo LAST; exit 3"), Ct);
            Assert.EndsWith("\nLAST\n", result.StandardOutput);
            Assert.Equal(300000 + 6, result.StandardOutputBytes.Length);
            Assert.Equal(3, result.Outcome.ExitCode);
        }
    }

    [Fact(Timeout = 120_000)]
    public async Task A_slow_consumer_gets_the_final_line_after_the_child_exited()
    {
        // Trinity #531: closing before draining lost the result line. The child exits immediately; we read slowly.
        await using var tree = ProcessTree.Start(new ProcessSpec("/bin/bash", "-c", "for i in $(seq 50); do echo line$i; done; echo RESULT_LINE; setsid sleep 300 & exit 0")
        {
            Teardown = new TeardownOptions { Grace = TimeSpan.FromMilliseconds(200) },
        }, Ct);
        var texts = new List<string>();
        await foreach (var line in tree.ReadLinesAsync(Ct))
        {
            texts.Add(line.Text);
            await Task.Delay(5, Ct);
        }

        Assert.Equal("RESULT_LINE", texts[^1]);
        Assert.Equal(51, texts.Count);
        Assert.Single((await tree.Completion).Killed);
    }
}
