namespace Corral.Server.Internal.Fleet;

/// <summary>
/// When a node renews its lease and when it gives up, as a function of the lease alone. A healthy node renews every
/// sixth of the lease; after a failed renewal it tries again at once and often, each attempt bounded, so that an
/// outage costs the node only its own length; it fences itself (kills its trees) after two thirds of the lease without
/// a renewal, a third before the lease runs out and another node may declare its tasks ended. So an outage that refuses
/// connections (a database stopped or restarting) costs no task when it is shorter than half the lease, whenever it
/// begins; one that leaves attempts hanging (a network that drops packets), when it is shorter than 0.4 of the lease.
/// </summary>
internal readonly record struct LeasePace(TimeSpan Lease)
{
    /// <summary>The pause between two renewals that succeed.</summary>
    public TimeSpan Renew => Lease / 6;

    /// <summary>The pause after a renewal that failed.</summary>
    public TimeSpan Retry => TimeSpan.FromTicks(Math.Clamp(Lease.Ticks / 30, TimeSpan.FromMilliseconds(50).Ticks, TimeSpan.FromSeconds(1).Ticks));

    /// <summary>How long without a renewal before the node kills its trees.</summary>
    public TimeSpan FenceAfter => Lease * 2 / 3;

    /// <summary>Whether a node whose last renewal succeeded <paramref name="silent"/> ago must kill its trees.</summary>
    public bool Fences(TimeSpan silent) => silent >= FenceAfter;

    /// <summary>
    /// How long one attempt may take when the last renewal succeeded <paramref name="silent"/> ago: a tenth of the lease,
    /// cut so that a hung attempt does not delay the fence (though never below the retry pause); once fenced, a tenth.
    /// </summary>
    public TimeSpan AttemptTimeout(TimeSpan silent)
    {
        var full = Lease / 10;
        if (Fences(silent))
            return full;
        var left = FenceAfter - silent;
        return left < full ? (left > Retry ? left : Retry) : full;
    }
}
