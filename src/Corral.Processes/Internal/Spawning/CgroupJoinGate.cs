using System.Runtime.InteropServices;
using System.Text;
using Corral.Processes.Interop;
using Corral.Processes.Internal.Io;

namespace Corral.Processes.Internal.Spawning;

/// <summary>
/// Puts a child into its cgroup leaf before it execs its program, without an exec shim.
/// </summary>
/// <remarks>
/// glibc before 2.39 cannot spawn into a cgroup, and .NET code cannot run between fork and exec. So posix_spawn's
/// child (a vfork child, not yet exec'd) is made to stop on its own, with two FIFOs made in a private 0700 directory
/// and reached only through /proc/self/fd of O_PATH descriptors (the directory is deleted at once):
/// <list type="number">
/// <item>its first file action opens <c>arrive</c> for writing (and keeps it open), which pairs with the helper
/// thread's blocking open for reading: the helper now knows the child exists, and finds it among the PIDs allocated
/// since the spawn began as the process whose gate descriptor is that FIFO (see <see cref="FindChild"/>);</item>
/// <item>its second opens <c>release</c> for reading, which blocks until a writer opens it. The helper writes the
/// child's PID to the leaf's cgroup.procs and only then opens <c>release</c> for writing; the child closes both
/// FIFOs (never inherited) and execs inside the leaf.</item>
/// </list>
/// If the cgroup.procs write fails, the helper SIGKILLs the child (our unreaped child, so its PID cannot be
/// recycled) instead of releasing it: the program never runs outside the leaf. Every wait is a blocking open, so
/// nothing spins. posix_spawn cannot return while its child is blocked, and when it does return without a child
/// that got through (it failed, or the child died), the spawning thread opens the other end of whichever FIFO the
/// helper waits on, so the helper always finishes. Spawns through the gate are serialized (one pair of FIFOs),
/// as .NET's Process.Start serializes its forks. Unavailable, and the /bin/sh shim is used instead, without a
/// readable /proc/sys/kernel/ns_last_pid or a private FIFO.
/// </remarks>
internal sealed unsafe class CgroupJoinGate
{
    private const int Idle = 0;
    private const int WaitingArrival = 1;
    private const int WaitingRelease = 2;

    private static readonly Lazy<CgroupJoinGate?> s_instance = new(Create);

    private readonly Lock _spawnLock = new();
    private readonly SemaphoreSlim _job = new(0);

    // The current job: written by the spawning thread before posix_spawn, read by the helper once the child has
    // arrived (the open that pairs them is a full barrier).
    private int _lastPidBefore;
    private long _giveUpAt;
    private int _gateFd;
    private string _procsPath = "";
    private int _joinError;
    private volatile bool _spawnReturned;
    private volatile int _state = Idle;

    private readonly byte[] _arriveLink;
    private CgroupJoinGate(int arriveFd, int releaseFd)
    {
        // Both ends open the FIFOs through /proc/self/fd/N of O_PATH descriptors (the child has a copy of our
        // descriptor table until it execs), so the files themselves can be, and are, deleted at once: nothing is
        // left in /tmp, and nothing there (a tmp cleaner) can break spawning later.
        ArrivePath = ProcSelfFd(arriveFd);
        ReleasePath = ProcSelfFd(releaseFd);
        LowestGateFd = Math.Max(arriveFd, releaseFd) + 1;
        _arriveLink = Fd.ReadLink($"/proc/self/fd/{arriveFd}") is { } link ? Encoding.UTF8.GetBytes(link) : [];
        new Thread(HelperLoop) { IsBackground = true, Name = "corral-cgroup-join" }.Start();
    }

    public static CgroupJoinGate? Instance => s_instance.Value;

    /// <summary>
    /// The child's gate descriptors must be above this process's O_PATH descriptors for the FIFOs, which the
    /// child's file actions reach through /proc/self/fd: opening onto one of them would replace it first.
    /// </summary>
    public int LowestGateFd { get; }

    /// <summary>The child's first file action opens this FIFO for writing.</summary>
    public byte* ArrivePath { get; }

    /// <summary>The child's second file action opens this FIFO for reading (blocks until released).</summary>
    public byte* ReleasePath { get; }

    private static CgroupJoinGate? Create()
    {
        if (ProcFs.LastPid() <= 0 || ProcFs.MaxPid() <= 0)
            return null;
        string? directory = null;
        try
        {
            // mkdtemp: mode 0700, so no other user can open the FIFOs and release a child early.
            directory = Directory.CreateTempSubdirectory("corral-").FullName;
            int arrive = MakeFifo(Path.Combine(directory, "arrive"));
            int release = MakeFifo(Path.Combine(directory, "release"));
            Directory.Delete(directory, recursive: true);
            directory = null;
            if (arrive >= 0 && release >= 0)
                return new CgroupJoinGate(arrive, release);
            Fd.Close(ref arrive);
            Fd.Close(ref release);
            return null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            if (directory is not null)
                try { Directory.Delete(directory, recursive: true); } catch (IOException) { }
            return null;
        }
    }

    /// <summary>mkfifo, then an O_PATH descriptor for it (which does not open the FIFO itself, so never blocks).</summary>
    private static int MakeFifo(string path)
    {
        int length = Encoding.UTF8.GetByteCount(path);
        byte* p = stackalloc byte[length + 1];
        Encoding.UTF8.GetBytes(path, new Span<byte>(p, length));
        p[length] = 0;
        if (Libc.mkfifo(p, Convert.ToInt32("600", 8)) != 0)
            return -1;
        return Libc.open(p, Libc.O_PATH | Libc.O_CLOEXEC, 0);
    }

    private static byte* ProcSelfFd(int fd)
    {
        string path = $"/proc/self/fd/{fd}";
        byte* p = (byte*)NativeMemory.Alloc((nuint)path.Length + 1);
        Encoding.ASCII.GetBytes(path, new Span<byte>(p, path.Length));
        p[path.Length] = 0;
        return p;
    }

    /// <summary>
    /// Call on the spawning thread right before posix_spawn, whose first file actions open <see cref="ArrivePath"/>
    /// for writing as <paramref name="gateFd"/> (kept open: it is how the helper recognises the child), then
    /// <see cref="ReleasePath"/> for reading, then close both; call <see cref="End"/> on the same thread, always, once
    /// posix_spawn has returned.
    /// </summary>
    public void Begin(string procsPath, int gateFd)
    {
        _spawnLock.Enter();
        _lastPidBefore = ProcFs.LastPid();
        _gateFd = gateFd;
        _giveUpAt = 0;
        _procsPath = procsPath;
        _joinError = 0;
        _spawnReturned = false;
        _state = WaitingArrival;
        _job.Release();
    }

    /// <summary>
    /// Returns 0 when the child (if there was one) was joined before it could exec; otherwise the errno of the
    /// failed join: the child was killed before exec (or, after an internal failure of the helper, must be killed
    /// by the caller at once).
    /// </summary>
    public int End()
    {
        int escape = -1;
        try
        {
            _spawnReturned = true;
            var spin = new SpinWait();
            while (_state != Idle)
            {
                // Normally the helper is already done or about to be. Otherwise no child will come through:
                // open the other end of the FIFO the helper is blocked on.
                if (_state == WaitingArrival)
                {
                    int fd = Libc.open(ArrivePath, Libc.O_WRONLY | Libc.O_NONBLOCK | Libc.O_CLOEXEC, 0);
                    if (fd >= 0)
                        Libc.close(fd);
                }
                else if (_state == WaitingRelease && escape < 0)
                {
                    escape = Libc.open(ReleasePath, Libc.O_RDONLY | Libc.O_NONBLOCK | Libc.O_CLOEXEC, 0);
                }

                spin.SpinOnce(sleep1Threshold: -1);
            }

            return _joinError;
        }
        finally
        {
            if (escape >= 0)
                Libc.close(escape);
            _spawnLock.Exit();
        }
    }

    private void HelperLoop()
    {
        int idleSpins = 0;
        while (true)
        {
            // Wait for a spawn to begin: by then the previous child has exec'd and closed "arrive", so the open
            // below pairs only with this spawn's child (or with End, when no child comes through).
            if (_state != WaitingArrival)
                _job.Wait();

            // Blocks until a writer opens "arrive".
            int arrived = Libc.open(ArrivePath, Libc.O_RDONLY | Libc.O_CLOEXEC, 0);
            if (arrived < 0)
            {
                if (Libc.LastError != Libc.EINTR)
                    Thread.Sleep(10);
                continue;
            }

            try
            {
                if (_state != WaitingArrival)
                {
                    // Not expected (see above); never spin on it.
                    BackOff(ref idleSpins);
                    continue;
                }

                if (_spawnReturned)
                {
                    // posix_spawn is over and no child came through (it failed, or the child died).
                    _state = Idle;
                    continue;
                }

                idleSpins = 0;
                int pid = FindChild();
                if (pid != 0)
                {
                    Join(pid);
                }
                else if (_giveUpAt == 0)
                {
                    // Its descriptor for "arrive" is installed just after the open pairs with ours: look again.
                    _giveUpAt = Environment.TickCount64 + 10000;
                    Thread.Yield();
                }
                else if (Environment.TickCount64 > _giveUpAt)
                {
                    // Cannot identify it (should not happen): let it go, and have the spawning thread kill it at once.
                    _joinError = Libc.ESRCH;
                    ReleaseUnjoined();
                }
                else
                {
                    Thread.Yield();
                }
            }
            catch (Exception)
            {
                // Never leave the spawning thread blocked: the spawner kills what was released unjoined.
                _joinError = Libc.EIO;
                ReleaseUnjoined();
            }
            finally
            {
                Libc.close(arrived);
            }
        }
    }

    private static void BackOff(ref int spins)
    {
        if (++spins < 100)
            Thread.Yield();
        else
            Thread.Sleep(1);
    }

    /// <summary>Moves <paramref name="pid"/> into the leaf, then releases it; if the move fails, kills it instead.</summary>
    private void Join(int pid)
    {
        _state = WaitingRelease;
        int errno = Fd.WriteFile(_procsPath, pid.ToString(System.Globalization.CultureInfo.InvariantCulture));
        if (errno != 0)
        {
            // Not in the leaf: it must never exec. Kill it where it waits (our unreaped child: its PID cannot have
            // been recycled); posix_spawn then returns.
            _joinError = errno;
            int pidfd = Libc.pidfd_open(pid);
            if (pidfd >= 0)
            {
                Libc.pidfd_send_signal(pidfd, Libc.SIGKILL);
                Libc.close(pidfd);
            }

            _state = Idle;
            return;
        }

        OpenRelease();
        _state = Idle;
    }

    private void ReleaseUnjoined()
    {
        _state = WaitingRelease;
        OpenRelease();
        _state = Idle;
    }

    /// <summary>Blocks until the child opens "release" for reading (or End does, when the child is gone).</summary>
    private void OpenRelease()
    {
        int release;
        while ((release = Libc.open(ReleasePath, Libc.O_WRONLY | Libc.O_CLOEXEC, 0)) < 0 && Libc.LastError == Libc.EINTR)
        {
        }

        if (release >= 0)
            Libc.close(release);
    }

    /// <summary>
    /// The blocked child: the process whose fd <see cref="_gateFd"/> is our private "arrive" FIFO (it keeps it open
    /// while it waits on "release"). Candidates are the PIDs allocated since Begin (ns_last_pid then and now; the
    /// kernel hands PIDs out in order), so the cost does not grow with the number of processes or of our children.
    /// The previous gate child, which may still hold "arrive" for a moment, got its PID before Begin and is not a
    /// candidate; any other process is excluded by the descriptor check.
    /// </summary>
    private int FindChild()
    {
        int last = ProcFs.LastPid();
        if (_lastPidBefore <= 0 || last <= 0)
            return 0;
        // If pid_max became unreadable, the largest value the kernel allows still bounds the walk.
        int maxPid = ProcFs.MaxPid() is > 0 and var max ? max : 4194304;
        int count = 0;
        for (int pid = _lastPidBefore; pid != last && count < 65536; count++)
        {
            pid = pid >= maxPid ? 1 : pid + 1;
            if (IsBlockedAtGate(pid, _gateFd, _arriveLink))
                return pid;
        }

        return 0;
    }

    /// <summary>
    /// Whether <paramref name="pid"/> holds "arrive" open for writing as <paramref name="gateFd"/>, as the gate child
    /// does. For writing: the helper's own descriptor for "arrive" (read-only) may have the number
    /// <paramref name="gateFd"/>, and then each of our threads (a thread id is a PID of the window too) and any other
    /// child of ours not yet exec'd shows it there; moving one of those into the leaf would move this process.
    /// </summary>
    internal static bool IsBlockedAtGate(int pid, int gateFd, byte[] arriveLink)
    {
        Span<byte> link = stackalloc byte[512];
        int n = ProcFs.ReadFdLink(pid, gateFd, link);
        if (n <= 0 || !link[..n].SequenceEqual(arriveLink))
            return false;
        byte[] buffer = new byte[256];
        return Containment.ProcScanner.IsWritable(pid, gateFd, ref buffer);
    }
}
