using System.Net;
using Corral.Server.Hosting;
using Corral.Server.Internal.Scheduling;
using Corral.Server.Tests.Support;

namespace Corral.Server.Tests.Isolation;

/// <summary>A task whose memory limit does not fit what the node can give waits in the queue, says why, and starts when memory frees.</summary>
public sealed class MemoryAdmissionTests
{
    [Fact(Timeout = 120_000)]
    public async Task A_task_that_does_not_fit_waits_with_its_reason_and_starts_when_memory_frees()
    {
        await using var server = await TestServer.StartAsync(s =>
        {
            s["Corral:Limits:NodeMemoryMb"] = "1000";
            s["Corral:Limits:MemoryReserveMb"] = "0";
            s["Corral:Limits:MaxMemoryPressure"] = "100";
        });
        var big = await server.Http.CreateAsync(new { agent = "command", command = new[] { "sleep", "60" }, limits = new { memoryMaxMb = 700 } });
        await server.Http.WaitForAsync(big.Id!, t => t["status"]!.GetValue<string>() == "running");
        var waiting = await server.Http.CreateAsync(new { agent = "command", command = new[] { "echo", "fits now" }, limits = new { memoryMaxMb = 500 } });
        Assert.Equal(HttpStatusCode.Accepted, waiting.Status);
        var queued = await server.Http.WaitForAsync(waiting.Id!, t => t["queueReason"] is not null, TimeSpan.FromSeconds(10), "a queue reason");
        Assert.Equal("queued", queued["status"]!.GetValue<string>());
        Assert.Contains("500 MiB does not fit", queued["queueReason"]!.GetValue<string>());
        var small = await server.Http.CreateAsync(new { agent = "command", command = new[] { "echo", "no limit" } }, wait: 5);
        Assert.Equal("queued", small.TaskStatus); // first come, first served: not ahead of the waiting task

        await server.Http.CancelAsync(big.Id!);
        var ran = await server.Http.WaitForEndAsync(waiting.Id!);
        Assert.Equal("succeeded", ran["status"]!.GetValue<string>());
        Assert.Null(ran["queueReason"]);
        Assert.Equal("succeeded", (await server.Http.WaitForEndAsync(small.Id!))["status"]!.GetValue<string>());
    }

    [Fact(Timeout = 10_000)]
    public void Memory_is_read_again_only_once_the_last_reading_is_older_than_its_max_age()
    {
        var clock = new SteppedClock();
        int reads = 0;
        var watch = new MemoryWatch(clock, () => new MemoryFacts(1000, 1000 - ++reads, null));

        Assert.Equal(999, watch.Current.AvailableBytes);
        clock.Advance(MemoryWatch.MaxAge - TimeSpan.FromMilliseconds(1));
        Assert.Equal(999, watch.Current.AvailableBytes);
        Assert.Equal(1, reads);
        clock.Advance(TimeSpan.FromMilliseconds(1));
        Assert.Equal(998, watch.Current.AvailableBytes);
        Assert.Equal(2, reads);
    }

    private sealed class SteppedClock : TimeProvider
    {
        private long _ticks;

        public override long TimestampFrequency => TimeSpan.TicksPerSecond;

        public override long GetTimestamp() => _ticks;

        public void Advance(TimeSpan by) => _ticks += by.Ticks;
    }

    [Theory]
    [InlineData(null, 0L, 24_000L, 20_000L, 1.0, null)]          // no limit, no pressure: starts
    [InlineData(null, 0L, 24_000L, 20_000L, 50.0, "pressure")]   // no task starts under pressure
    [InlineData(1000L, 0L, 24_000L, 20_000L, 0.0, null)]
    [InlineData(1000L, 23_000L, 24_000L, 20_000L, 0.0, "does not fit")]    // limits of running tasks count
    [InlineData(8000L, 0L, 24_000L, 7_000L, 0.0, "available now")]         // and what is free now
    public void The_decision_is_a_function_of_the_numbers(long? limitMb, long committedMb, long totalMb, long availableMb, double pressure, string? reason)
    {
        var options = new LimitOptions { MemoryReserveMb = 512, MaxMemoryPressure = 20 };
        var facts = new MemoryFacts(totalMb << 20, availableMb << 20, pressure);
        string? decided = MemoryGate.Check(limitMb is { } l ? l << 20 : null, committedMb << 20, facts, options);
        if (reason is null)
            Assert.Null(decided);
        else
            Assert.Contains(reason, decided);

        // A fleet node claims up to the room: the same decision, read the other way.
        long? room = MemoryGate.Room(committedMb << 20, facts, options);
        if (reason == "pressure")
            Assert.Null(room);
        else
            Assert.Equal(reason is null, (limitMb is { } m ? m << 20 : 0) <= room);
    }
}
