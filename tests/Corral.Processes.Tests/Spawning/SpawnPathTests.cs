using System.Diagnostics;
using Corral.Processes.Internal.Io;
using Corral.Processes.Internal.Spawning;
using Corral.Processes.Interop;
using Corral.Processes.Tests.Support;

namespace Corral.Processes.Tests.Spawning;

/// <summary>
/// Both ways of spawning: Corral's native clone3 (the child is born in its cgroup) and the posix_spawn fallback
/// (the child is moved into its cgroup before it execs). Each test runs the same checks through both.
/// </summary>
[Collection(SpawnPathCollection.Name)]
public sealed partial class SpawnPathTests : IDisposable
{
    public static TheoryData<bool, ContainmentMode> Paths => new()
    {
        { true, ContainmentMode.Cgroup }, { true, ContainmentMode.Session },
        { false, ContainmentMode.Cgroup }, { false, ContainmentMode.Session },
    };

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public void Dispose() => Spawner.PreferNative = true;

    private static void Use(bool native, ContainmentMode mode)
    {
        Modes.SkipIfUnavailable(mode);
        Spawner.PreferNative = native;
    }

    [Fact]
    public void The_native_spawn_is_built_and_loaded()
    {
        // The build compiles Native/corral_spawn.c with the system C compiler; without one Corral still works,
        // but slower in cgroup mode, so a build that lost it should not go unnoticed.
        if (!File.Exists("/usr/bin/cc"))
            Assert.Skip("no C compiler (/usr/bin/cc) to build the native spawn with");
        Assert.True(CorralSpawn.Available, $"{CorralSpawn.FileName} was not built or not loaded: install a C compiler (cc)");
    }

    [Theory(Timeout = 120_000)]
    [InlineData(true)]
    [InlineData(false)]
    public async Task An_end_at_descriptor_0_1_or_2_reaches_the_child_on_its_own_stream(bool native)
    {
        Use(native, ContainmentMode.Session);
        // As in a host started with stdin closed: the stdout pipe's write end is this process's fd 0 (for the spawn
        // only; the collection runs alone, so no other child inherits it). The child moves stdin onto 0 first.
        var (outRead, outWrite) = Fd.CreatePipe();
        var (errRead, errWrite) = Fd.CreatePipe();
        int devNull = Fd.OpenRead("/dev/null");
        int saved = Libc.fcntl(0, Libc.F_DUPFD_CLOEXEC, 3);
        Assert.True(saved >= 0 && Dup2(outWrite, 0) == 0);
        SpawnedChild spawned;
        try
        {
            var request = SpawnRequest.Validate(new ProcessSpec("/bin/sh", "-c", "echo out; echo err >&2"), Guid.NewGuid().ToString("N"));
            spawned = Spawner.Spawn(request, devNull, 0, errWrite, leaf: null);
        }
        finally
        {
            Assert.Equal(0, Dup2(saved, 0));
            Fd.Close(ref saved);
            Fd.Close(ref outWrite);
            Fd.Close(ref errWrite);
            Fd.Close(ref devNull);
        }

        using var child = new Internal.Containment.ChildProcess(spawned.Pid, spawned.Pidfd);
        await using var stdout = new FileStream(new Microsoft.Win32.SafeHandles.SafeFileHandle(outRead, ownsHandle: true), FileAccess.Read);
        await using var stderr = new FileStream(new Microsoft.Win32.SafeHandles.SafeFileHandle(errRead, ownsHandle: true), FileAccess.Read);
        Assert.Equal("out\n", await new StreamReader(stdout).ReadToEndAsync(Ct));
        Assert.Equal("err\n", await new StreamReader(stderr).ReadToEndAsync(Ct));
        await child.Exited.WaitAsync(Ct);
        Assert.Equal(0, child.Reap().ExitCode);
    }

    private static int Dup2(int from, int to) => dup2(from, to) < 0 ? -1 : 0;

    [System.Runtime.InteropServices.LibraryImport("libc", SetLastError = true)]
    private static partial int dup2(int from, int to);

    [Theory(Timeout = 120_000)]
    [MemberData(nameof(Paths))]
    public async Task The_program_starts_contained_as_a_session_leader_with_clean_signals_and_descriptors(bool native, ContainmentMode mode)
    {
        Use(native, mode);
        // The first thing the program does is read where it is: in cgroup mode it must already be in its leaf.
        var spec = new ProcessSpec("/bin/sh", "-c",
            "cat /proc/self/cgroup; ps -o sid= -o pgid= -p $$; grep -E '^Sig(Blk|Ign)' /proc/self/status; ls /proc/$$/fd; pwd")
        {
            Containment = mode,
            WorkingDirectory = "/tmp",
        };
        var result = await ProcessTree.RunAsync(spec, Ct);
        var lines = result.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        int pid = result.Outcome.Pid;

        if (mode == ContainmentMode.Cgroup)
            Assert.Contains(lines, l => l.StartsWith("0::", StringComparison.Ordinal) && l.EndsWith("/" + result.Outcome.TreeId, StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries) is [var sid, var pgid] && sid == pid.ToString() && pgid == pid.ToString());
        Assert.Contains("SigBlk:\t0000000000000000", lines);
        ulong ignored = Convert.ToUInt64(lines.Single(l => l.StartsWith("SigIgn:", StringComparison.Ordinal))[7..].Trim(), 16);
        Assert.Equal(0UL, ignored & 0x7FFFFFFFUL);
        Assert.Equal(["0", "1", "2"], lines.Where(l => l.All(char.IsAsciiDigit)).Order().ToArray());
        Assert.Equal("/tmp", lines[^1]);
        Assert.Equal(0, result.Outcome.ExitCode);
    }

    [Theory(Timeout = 120_000)]
    [MemberData(nameof(Paths))]
    public async Task An_escapee_neither_delays_the_result_nor_survives(bool native, ContainmentMode mode)
    {
        Use(native, mode);
        var clock = Stopwatch.StartNew();
        var result = await ProcessTree.RunAsync(new ProcessSpec("/bin/sh", "-c", "echo RESULT_LINE; setsid sleep 300 & echo $!") { Containment = mode }, Ct);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"took {clock.Elapsed}");
        var lines = result.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("RESULT_LINE", lines[0]);
        int escapee = int.Parse(lines[1]);
        Assert.Contains(result.Outcome.Killed, k => k.Pid == escapee);
        await Proc.WaitForAsync(() => !Proc.IsAlive(escapee), TimeSpan.FromSeconds(5), "the escapee to be gone");
    }

    [Theory]
    [MemberData(nameof(Paths))]
    public void A_file_the_kernel_cannot_execute_is_reported_as_not_executable(bool native, ContainmentMode mode)
    {
        Use(native, mode);
        string file = Path.GetTempFileName();
        try
        {
            File.WriteAllBytes(file, [0x7f, 0x45, 0x4c, 0x46, 0, 0, 0, 0]); // a truncated ELF header: ENOEXEC
            File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.UserExecute);
            var e = Assert.Throws<ProcessSpawnException>(() => ProcessTree.Start(new ProcessSpec(file) { Containment = mode }, Ct));
            Assert.Equal(SpawnFailure.NotExecutable, e.Failure);
            Assert.Equal(Libc.ENOEXEC, e.ErrorCode);
        }
        finally
        {
            File.Delete(file);
        }
    }
}

/// <summary>Switching the spawn path is process-wide, so these tests run on their own.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class SpawnPathCollection
{
    public const string Name = "spawn path";
}
