using System.Diagnostics;
using CliWrap;
using CliWrap.Buffered;
using Corral.Benchmarks.Harness;
using Corral.Processes;
using MedallionCommand = Medallion.Shell.Command;

namespace Corral.Benchmarks.Contenders;

/// <summary>What one buffered call returned to its caller.</summary>
internal readonly record struct CallResult(long StdoutBytes, long StderrBytes, bool Canceled, string? Error = null, string? Tail = null)
{
    public long Bytes => StdoutBytes + StderrBytes;
}

/// <summary>
/// "Run this command and give me its output": each contender used the way its documentation shows for buffered
/// capture, with its own timeout/cancellation mechanism set to the cap.
/// </summary>
internal static class Buffered
{
    public delegate Task<CallResult> Call(string file, string[] args, string tag, TimeSpan cap);

    public sealed record Contender(string Name, Role Role, Call Run, bool Blocking = false);

    public static IReadOnlyList<Contender> All(bool includeRaw = true)
    {
        var list = new List<Contender>
        {
            new("Corral (cgroup)", Role.Corral, (f, a, t, c) => Corral(ContainmentMode.Cgroup, f, a, t, c)),
            new("Corral (session)", Role.Corral, (f, a, t, c) => Corral(ContainmentMode.Session, f, a, t, c)),
            new("Process", Role.Peer, Process),
            new("CliWrap", Role.Peer, CliWrap),
            new("MedallionShell", Role.Peer, Medallion),
        };
        if (includeRaw)
            list.Add(new("raw posix_spawn + poll", Role.Baseline, Raw, Blocking: true));
        return list;
    }

    /// <summary>The user the isolated contenders run as: nobody, with its groups (resolved once).</summary>
    private static readonly Lazy<ProcessUser> s_user = new(() => ProcessUser.Parse("nobody"));

    /// <summary>The limits the isolated contenders set: generous, so that <c>/bin/true</c> never meets them.</summary>
    private static readonly ResourceLimits s_limits = new() { MemoryMaxBytes = 256L << 20, PidsMax = 64, CpuMax = 1 };

    /// <summary>Corral with a user and limits set, for the spawn scenario's side-by-side with plain Corral (issue 10).</summary>
    public static IReadOnlyList<Contender> Isolated() =>
    [
        new("Corral (cgroup) + user, limits", Role.Corral, (f, a, t, c) => Corral(ContainmentMode.Cgroup, f, a, t, c, isolated: true)),
        new("Corral (session) + user, limits", Role.Corral, (f, a, t, c) => Corral(ContainmentMode.Session, f, a, t, c, isolated: true)),
    ];

    public static async Task<CallResult> Corral(ContainmentMode mode, string file, string[] args, string tag, TimeSpan cap, bool isolated = false)
    {
        using var cts = new CancellationTokenSource(cap);
        var spec = new ProcessSpec(file, args)
        {
            Containment = mode,
            Environment = new Dictionary<string, string?> { [Leftovers.TagVariable] = tag },
            User = isolated ? s_user.Value : null,
            ResourceLimits = isolated ? s_limits : null,
        };
        var result = await ProcessTree.RunAsync(spec, cts.Token).ConfigureAwait(false);
        return new CallResult(result.StandardOutputBytes.Length, result.StandardErrorBytes.Length,
            result.Outcome.Reason == ExitReason.Canceled, Tail: TailOf(result.StandardOutputBytes.Span));
    }

    /// <summary>The documented pattern: redirect, ReadToEndAsync on both streams, WaitForExitAsync; kill the tree on timeout.</summary>
    public static async Task<CallResult> Process(string file, string[] args, string tag, TimeSpan cap)
    {
        using var cts = new CancellationTokenSource(cap);
        var psi = new ProcessStartInfo(file, args)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        psi.Environment[Leftovers.TagVariable] = tag;
        using var p = System.Diagnostics.Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync(cts.Token);
        var stderr = p.StandardError.ReadToEndAsync(cts.Token);
        try
        {
            await p.WaitForExitAsync(cts.Token).ConfigureAwait(false);
            string o = await stdout.ConfigureAwait(false);
            string e = await stderr.ConfigureAwait(false);
            return new CallResult(o.Length, e.Length, false, Tail: TailOf(o));
        }
        catch (OperationCanceledException)
        {
            try { p.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
            await Task.WhenAll(Swallow(stdout), Swallow(stderr)).ConfigureAwait(false);
            return new CallResult(0, 0, true);
        }
    }

    public static async Task<CallResult> CliWrap(string file, string[] args, string tag, TimeSpan cap)
    {
        using var cts = new CancellationTokenSource(cap);
        try
        {
            var r = await Cli.Wrap(file).WithArguments(args)
                .WithEnvironmentVariables(e => e.Set(Leftovers.TagVariable, tag))
                .WithValidation(CommandResultValidation.None)
                .ExecuteBufferedAsync(cts.Token).ConfigureAwait(false);
            return new CallResult(r.StandardOutput.Length, r.StandardError.Length, false, Tail: TailOf(r.StandardOutput));
        }
        catch (OperationCanceledException)
        {
            return new CallResult(0, 0, true);
        }
    }

    public static async Task<CallResult> Medallion(string file, string[] args, string tag, TimeSpan cap)
    {
        using var cts = new CancellationTokenSource(cap);
        var cmd = MedallionCommand.Run(file, args, o => o.EnvironmentVariable(Leftovers.TagVariable, tag).ThrowOnError(false).CancellationToken(cts.Token));
        try
        {
            var r = await cmd.Task.ConfigureAwait(false);
            return new CallResult(r.StandardOutput.Length, r.StandardError.Length, false, Tail: TailOf(r.StandardOutput));
        }
        catch (OperationCanceledException)
        {
            return new CallResult(0, 0, true);
        }
    }

    public static Task<CallResult> Raw(string file, string[] args, string tag, TimeSpan cap)
    {
        var r = RawProcess.Run(file, [file, .. args], RawProcess.Environment(tag));
        return Task.FromResult(new CallResult(r.StdoutBytes, r.StderrBytes, false));
    }

    private static async Task Swallow(Task t)
    {
        try { await t.ConfigureAwait(false); } catch (Exception) { }
    }

    private static string TailOf(ReadOnlySpan<byte> bytes) => System.Text.Encoding.ASCII.GetString(bytes[Math.Max(0, bytes.Length - 16)..]);

    private static string TailOf(string s) => s[Math.Max(0, s.Length - 16)..];
}
