using Corral.Benchmarks.Harness;

namespace Corral.Benchmarks.Scenarios;

/// <summary>
/// 7. Corral.Server over loopback HTTP: tasks per second and p50/p99 added latency of the command agent with 1, 16
/// and 64 concurrent clients, against spawning the same command directly. Needs Corral.Server, which is built on the
/// <c>server</c> branch and not merged yet: when it is, add a ProjectReference to it and implement
/// <see cref="RunAsync"/> with the same pattern as <see cref="SpawnScenario"/> (one Series per client count, the
/// direct spawn as the baseline row).
/// </summary>
internal sealed class ServerScenario : IScenario
{
    public string Key => "server";
    public string Title => "7. Server";
    public string? Unavailable => "Corral.Server is not in this build (branch `server` not merged into main yet)";

    public Task RunAsync(RunContext context) => Task.CompletedTask;
}
