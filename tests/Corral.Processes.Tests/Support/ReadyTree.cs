namespace Corral.Processes.Tests.Support;

/// <summary>Trees whose script prints "ready" once it has set itself up.</summary>
internal static class ReadyTree
{
    /// <summary>Starts <paramref name="spec"/> and returns once the tree's first line is "ready" (disposing it otherwise).</summary>
    public static async Task<ProcessTree> StartAsync(ProcessSpec spec, CancellationToken ct)
    {
        var tree = ProcessTree.Start(spec, ct);
        try
        {
            await using (var lines = tree.ReadLinesAsync(ct).GetAsyncEnumerator(ct))
                Assert.True(await lines.MoveNextAsync() && lines.Current.Text == "ready");
            return tree;
        }
        catch
        {
            await tree.DisposeAsync();
            throw;
        }
    }

    /// <summary>A tree that is ready at once and then runs until <see cref="Go"/>, with <paramref name="dir"/> as <c>$D</c> and a short teardown.</summary>
    public static Task<ProcessTree> UntilGoAsync(PidDir dir, ContainmentMode mode) =>
        StartAsync(Modes.Bash("echo ready; while [ ! -e \"$D/go\" ]; do sleep 0.01; done", mode) with
        {
            Environment = new Dictionary<string, string?> { ["D"] = dir.Path },
            Teardown = new TeardownOptions { Grace = TimeSpan.FromMilliseconds(300), KillWait = TimeSpan.FromMilliseconds(500) },
        }, TestContext.Current.CancellationToken);

    /// <summary>Lets an <see cref="UntilGoAsync"/> tree end.</summary>
    public static void Go(PidDir dir) => File.WriteAllText(dir.File("go"), "");
}
