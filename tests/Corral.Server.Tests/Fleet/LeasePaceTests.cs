using Corral.Server.Internal.Fleet;

namespace Corral.Server.Tests.Fleet;

/// <summary>The pace of lease renewals, as a function of the lease: what outages a node rides out without fencing itself.</summary>
public sealed class LeasePaceTests
{
    [Theory(Timeout = 10_000)]
    [InlineData(3)]
    [InlineData(15)]
    [InlineData(60)]
    public void An_outage_shorter_than_half_the_lease_or_than_0_4_of_it_when_attempts_hang_never_fences_the_node_whenever_it_begins(double leaseSeconds)
    {
        var pace = new LeasePace(TimeSpan.FromSeconds(leaseSeconds));
        // Outages that begin at every moment of a renewal period (in 1/50 steps), for attempts that fail at once
        // (connections refused) and for attempts that hang until their timeout.
        foreach (bool hang in new[] { false, true })
        {
            var outage = pace.Lease * (hang ? 0.4 : 0.5) - pace.Retry * 2;
            for (int step = 0; step < 50; step++)
            {
                var begins = pace.Lease + pace.Renew * step / 50;
                Assert.False(Fences(pace, begins, begins + outage, hang), $"outage at {begins} for {outage}, hang {hang}");
            }
        }
    }

    [Theory(Timeout = 10_000)]
    [InlineData(3)]
    [InlineData(15)]
    public void An_outage_as_long_as_two_thirds_of_the_lease_fences_the_node_by_two_thirds_of_the_lease_after_its_last_renewal(double leaseSeconds)
    {
        var pace = new LeasePace(TimeSpan.FromSeconds(leaseSeconds));
        foreach (bool hang in new[] { false, true })
        {
            var begins = pace.Lease + pace.Renew / 3;
            var fenced = FenceTime(pace, begins, begins + pace.Lease, hang);
            Assert.NotNull(fenced);
            var lastRenewal = pace.Lease; // the renewals are at whole multiples of Renew from 0, and Lease is one
            Assert.True(fenced <= lastRenewal + pace.FenceAfter + TimeSpan.FromMilliseconds(1), $"fenced at {fenced}, hang {hang}");
        }
    }

    [Fact(Timeout = 10_000)]
    public void An_attempt_never_runs_past_the_fence_nor_below_the_retry_pause()
    {
        var pace = new LeasePace(TimeSpan.FromSeconds(15));
        Assert.Equal(pace.Lease / 10, pace.AttemptTimeout(TimeSpan.Zero));
        Assert.Equal(TimeSpan.FromSeconds(1), pace.AttemptTimeout(pace.FenceAfter - TimeSpan.FromSeconds(1)));
        Assert.Equal(pace.Retry, pace.AttemptTimeout(pace.FenceAfter - TimeSpan.FromMilliseconds(1)));
        Assert.Equal(pace.Lease / 10, pace.AttemptTimeout(pace.FenceAfter + TimeSpan.FromSeconds(3))); // fenced: a slow database may answer
    }

    private static bool Fences(LeasePace pace, TimeSpan down, TimeSpan up, bool hang) => FenceTime(pace, down, up, hang) is not null;

    /// <summary>When a node renewing at <paramref name="pace"/> fences itself, given a database out of reach from <paramref name="down"/> to <paramref name="up"/>; <c>null</c>: never, within three leases.</summary>
    private static TimeSpan? FenceTime(LeasePace pace, TimeSpan down, TimeSpan up, bool hang)
    {
        var now = TimeSpan.Zero;
        var renewed = TimeSpan.Zero;
        bool failing = false;
        while (now < up + pace.Lease * 3)
        {
            now += failing ? pace.Retry : pace.Renew;
            var sent = now;
            bool reachable = now < down || now >= up;
            if (reachable)
            {
                renewed = sent;
                failing = false;
                continue;
            }

            if (hang)
                now += pace.AttemptTimeout(now - renewed);
            failing = true;
            if (pace.Fences(now - renewed))
                return now;
        }

        return null;
    }
}
