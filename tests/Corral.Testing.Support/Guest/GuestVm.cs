using System.Diagnostics;
using System.Text;
using Corral.Processes;

namespace Corral.Testing.Support.Guest;

/// <summary>What to run in a guest: a shell script, the host directories it needs (shared read-only at the same paths), and bounds.</summary>
/// <param name="Script">Run by the guest's /bin/sh as root, from /tmp. It writes its results to /job, the job directory shared read-write.</param>
public sealed record GuestJob(string Script)
{
    /// <summary>Host directories shared read-only at the same path (e.g. the build output). /usr and /etc always are.</summary>
    public IReadOnlyList<string> Shares { get; init; } = [];

    /// <summary>Environment of the script, on top of PATH, HOME=/tmp and TMPDIR=/tmp.</summary>
    public IReadOnlyDictionary<string, string> Environment { get; init; } = new Dictionary<string, string>();

    /// <summary>The whole run, boot to power-off; past it QEMU is stopped.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>
    /// How long the guest's process snapshot (rewritten every 10 s of guest time) may go unchanged before the guest
    /// counts as stalled and QEMU is stopped: a guest whose own clock or file system stopped, not a script that hangs.
    /// </summary>
    public TimeSpan StallLimit { get; init; } = TimeSpan.FromSeconds(90);

    public int Cpus { get; init; } = 2;

    public int MemoryMiB { get; init; } = 2048;
}

/// <summary>How a guest run ended; the job directory holds what the script wrote. Dispose to delete it.</summary>
public sealed class GuestResult(string jobDirectory, string console, ProcessOutcome qemu, TimeSpan elapsed) : IDisposable
{
    public string JobDirectory => jobDirectory;

    /// <summary>The guest's serial console (kernel messages, init's complaints).</summary>
    public string Console => console;

    public ProcessOutcome Qemu => qemu;

    public TimeSpan Elapsed => elapsed;

    /// <summary>
    /// The guest itself stopped making progress (see <see cref="GuestJob.StallLimit"/>): its snapshot of processes
    /// went unchanged, so even its shell loop was stuck. The script's own processes hanging leaves this false.
    /// </summary>
    public bool Stalled { get; init; }

    /// <summary>The script's exit status, or <c>null</c> if it never finished (the guest crashed or timed out).</summary>
    public int? ExitCode => int.TryParse(Read("exit"), out int code) ? code : null;

    public string Stdout => Read("stdout") ?? "";

    public string Stderr => Read("stderr") ?? "";

    /// <summary>A file the script wrote to /job, or <c>null</c>.</summary>
    public string? Read(string name)
    {
        string path = Path.Combine(jobDirectory, name);
        return File.Exists(path) ? File.ReadAllText(path) : null;
    }

    /// <summary>Everything a failure report needs: when the script never finished, also the files it got to write and what each guest process was last seen doing.</summary>
    public string Describe() =>
        $"guest script status {ExitCode?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "none"} after {Elapsed.TotalSeconds:0.0} s " +
        $"(qemu {Qemu.Reason}, status {Qemu.ShellExitCode}{(Stalled ? ", the guest stalled" : "")}; job directory {JobDirectory}).\nstdout: {Tool.Tail(Stdout)}\nstderr: {Tool.Tail(Stderr)}\nconsole: {Tool.Tail(Console)}" +
        (ExitCode is null ? $"\nfiles: {string.Join(' ', Files())}\nprocesses at the guest uptime shown (pid comm state ppid pgid wchan cgroup):\n{Read("ps")}" : "");

    private IEnumerable<string> Files() =>
        Directory.Exists(jobDirectory)
            ? Directory.EnumerateFiles(jobDirectory).Select(f => $"{Path.GetFileName(f)}({new FileInfo(f).Length})").Order(StringComparer.Ordinal)
            : [];

    /// <summary>Deletes the job directory, unless <c>CORRAL_GUEST_KEEP=1</c> asks to keep it for a look.</summary>
    public void Dispose()
    {
        if (System.Environment.GetEnvironmentVariable("CORRAL_GUEST_KEEP") == "1")
            return;
        try { Directory.Delete(jobDirectory, recursive: true); } catch (IOException) { }
    }
}

/// <summary>
/// Boots a QEMU guest with a pure cgroup v2 hierarchy (<c>cgroup_no_v1=all</c>): software emulation (TCG; this
/// machine's /dev/kvm is a paravirtual flavour that a stock kernel cannot use well), the host's /usr and /etc shared
/// over 9p (/etc under a tmpfs overlay), tmpfs on /tmp and /run, no network. One guest at a time per cache directory.
/// </summary>
public static class GuestVm
{
    public static async Task<GuestResult> RunAsync(GuestImage image, GuestJob job, CancellationToken ct)
    {
        string jobDirectory = Directory.CreateTempSubdirectory("corral-guest-").FullName;
        await File.WriteAllTextAsync(Path.Combine(jobDirectory, "run.sh"), job.Script, ct);
        await File.WriteAllTextAsync(Path.Combine(jobDirectory, "guest-init.sh"), GuestInit(job), ct);

        var arguments = new List<string>
        {
            "-accel", "tcg,thread=multi", "-cpu", "max", "-smp", job.Cpus.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "-m", job.MemoryMiB.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "-nographic", "-no-reboot", "-nic", "none",
            "-kernel", image.Kernel, "-initrd", image.Initramfs,
            "-append", "console=ttyS0 cgroup_no_v1=all panic=-1 rdinit=/init quiet",
            "-virtfs", $"local,path=/usr,mount_tag=usr,security_model=none,readonly=on",
            "-virtfs", $"local,path=/etc,mount_tag=etc,security_model=none,readonly=on",
            "-virtfs", $"local,path={jobDirectory},mount_tag=job,security_model=none",
        };
        for (int i = 0; i < job.Shares.Count; i++)
            arguments.AddRange(["-virtfs", $"local,path={job.Shares[i]},mount_tag=share{i},security_model=none,readonly=on"]);

        string qemu = Tool.Which("qemu-system-x86_64") ?? throw new GuestUnavailableException("qemu-system-x86_64 is not installed");
        var clock = Stopwatch.StartNew();
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var run = ProcessTree.RunAsync(new ProcessSpec(qemu, arguments)
        {
            StandardInput = InputSource.Null,
            Timeout = job.Timeout,
            Teardown = new TeardownOptions { Grace = TimeSpan.FromSeconds(2) },
        }, stop.Token);
        bool stalled = await WatchForStallAsync(run, Path.Combine(jobDirectory, "ps"), job.StallLimit, clock);
        if (stalled)
            await stop.CancelAsync();
        var result = await run;
        return new GuestResult(jobDirectory, result.StandardOutput + result.StandardError, result.Outcome, clock.Elapsed) { Stalled = stalled };
    }

    /// <summary>Whether the snapshot at <paramref name="snapshot"/> went unchanged for longer than <paramref name="limit"/> before <paramref name="run"/> ended.</summary>
    private static async Task<bool> WatchForStallAsync(Task run, string snapshot, TimeSpan limit, Stopwatch clock)
    {
        var seen = DateTime.MinValue;
        var progressAt = clock.Elapsed;
        while (await Task.WhenAny(run, Task.Delay(TimeSpan.FromSeconds(2))) != run)
        {
            var written = File.GetLastWriteTimeUtc(snapshot);
            if (written != seen)
                (seen, progressAt) = (written, clock.Elapsed);
            else if (clock.Elapsed - progressAt > limit)
                return true;
        }

        return false;
    }

    /// <summary>What /init hands over to once the job share is mounted: the rest of the file systems, then the script.</summary>
    private static string GuestInit(GuestJob job)
    {
        var s = new StringBuilder();
        s.AppendLine("B=/busybox");
        s.AppendLine("o=trans=virtio,version=9p2000.L,msize=512000");
        s.AppendLine("$B mount -t 9p -o $o,ro,cache=loose usr /usr");
        s.AppendLine("$B mount -t 9p -o $o,ro,cache=loose etc /.lower/etc");
        s.AppendLine("$B mount -t tmpfs tmpfs /.rw && $B mkdir -p /.rw/etc /.rw/work");
        s.AppendLine("$B mount -t overlay overlay -o lowerdir=/.lower/etc,upperdir=/.rw/etc,workdir=/.rw/work /etc");
        s.AppendLine("$B mount -t tmpfs tmpfs /tmp");
        s.AppendLine("$B mount -t tmpfs tmpfs /run");
        s.AppendLine("$B mkdir -p /dev/shm && $B mount -t tmpfs tmpfs /dev/shm");
        s.AppendLine("$B mount -t cgroup2 cgroup2 /sys/fs/cgroup");
        for (int i = 0; i < job.Shares.Count; i++)
            s.AppendLine($"$B mkdir -p {Quote(job.Shares[i])} && $B mount -t 9p -o $o,ro,cache=loose share{i} {Quote(job.Shares[i])}");
        s.AppendLine("export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/tmp TMPDIR=/tmp");
        foreach (var (name, value) in job.Environment)
            s.AppendLine($"export {name}={Quote(value)}");
        s.AppendLine("cd /tmp");
        // Every 10 s, what each process is doing, so a script that never finishes says where it hung.
        s.AppendLine("( while :; do { read -r up _ < /proc/uptime; echo \"uptime $up\"; for d in /proc/[0-9]*; do w=; read -r st < $d/stat && read -r w < $d/wchan; read -r cg < $d/cgroup && set -- $st && [ $4 != 2 ] && [ $1 != 2 ] && echo \"$1 $2 $3 $4 $5 $w $cg\"; done; } > /job/.ps.new 2>/dev/null; mv /job/.ps.new /job/ps; sleep 10; done ) &");
        s.AppendLine("/bin/sh /job/run.sh > /job/stdout 2> /job/stderr");
        s.AppendLine("echo $? > /job/exit");
        return s.ToString();
    }

    private static string Quote(string text) => "'" + text.Replace("'", "'\\''", StringComparison.Ordinal) + "'";
}
