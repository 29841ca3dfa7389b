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
/// child (a vfork child, not yet exec'd) is made to stop on its own, with two FIFOs in a private 0700 directory:
/// <list type="number">
/// <item>its first file action opens <c>arrive</c> for writing, which pairs with the helper thread's blocking open
/// for reading: the helper now knows the child exists, and finds it as the one new entry of the spawning thread's
/// /proc/self/task/TID/children (the spawning thread, blocked in posix_spawn, creates nothing else);</item>
/// <item>its second opens <c>release</c> for reading, which blocks until a writer opens it. The helper writes the
/// child's PID to the leaf's cgroup.procs and only then opens <c>release</c> for writing; the child closes both
/// FIFOs (never inherited) and execs inside the leaf.</item>
/// </list>
/// If the cgroup.procs write fails, the helper SIGKILLs the child (our unreaped child, so its PID cannot be
/// recycled) instead of releasing it: the program never runs outside the leaf. Every wait is a blocking open, so
/// nothing spins. posix_spawn cannot return while its child is blocked, and when it does return without a child
/// that got through (it failed, or the child died), the spawning thread opens the other end of whichever FIFO the
/// helper waits on, so the helper always finishes. Spawns through the gate are serialized (one pair of FIFOs),
/// as .NET's Process.Start serializes its forks. Unavailable, and the /bin/sh shim is used instead, without
/// /proc/thread-self/children or a private FIFO.
/// </remarks>
internal sealed unsafe class CgroupJoinGate
{
    private const int Idle = 0;
    private const int WaitingArrival = 1;
    private const int WaitingRelease = 2;

    private static readonly Lazy<CgroupJoinGate?> s_instance = new(Create);

    private readonly Lock _spawnLock = new();
    private readonly string _directory;

    // The current job: written by the spawning thread before posix_spawn, read by the helper once the child has
    // arrived (the open that pairs them is a full barrier).
    private int _spawnerTid;
    private HashSet<int> _before = [];
    private string _procsPath = "";
    private int _joinError;
    private volatile bool _spawnReturned;
    private volatile int _state = Idle;

    private CgroupJoinGate(string directory, byte* arrive, byte* release)
    {
        _directory = directory;
        ArrivePath = arrive;
        ReleasePath = release;
        new Thread(HelperLoop) { IsBackground = true, Name = "corral-cgroup-join" }.Start();
        AppDomain.CurrentDomain.ProcessExit += (_, _) => Cleanup();
    }

    public static CgroupJoinGate? Instance => s_instance.Value;

    /// <summary>The child's first file action opens this FIFO for writing.</summary>
    public byte* ArrivePath { get; }

    /// <summary>The child's second file action opens this FIFO for reading (blocks until released).</summary>
    public byte* ReleasePath { get; }

    private static CgroupJoinGate? Create()
    {
        if (!File.Exists("/proc/thread-self/children"))
            return null;
        string? directory = null;
        try
        {
            // mkdtemp: mode 0700, so no other user can open the FIFOs and release a child early.
            directory = Directory.CreateTempSubdirectory("corral-").FullName;
            byte* arrive = MakeFifo(Path.Combine(directory, "arrive"));
            byte* release = MakeFifo(Path.Combine(directory, "release"));
            if (arrive is not null && release is not null)
                return new CgroupJoinGate(directory, arrive, release);
            Directory.Delete(directory, recursive: true);
            return null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            if (directory is not null)
                try { Directory.Delete(directory, recursive: true); } catch (IOException) { }
            return null;
        }
    }

    private static byte* MakeFifo(string path)
    {
        int length = Encoding.UTF8.GetByteCount(path);
        byte* p = (byte*)NativeMemory.Alloc((nuint)length + 1);
        Encoding.UTF8.GetBytes(path, new Span<byte>(p, length));
        p[length] = 0;
        if (Libc.mkfifo(p, Convert.ToInt32("600", 8)) == 0)
            return p;
        NativeMemory.Free(p);
        return null;
    }

    /// <summary>
    /// Call on the spawning thread right before posix_spawn (whose first file actions open <see cref="ArrivePath"/>
    /// for writing, then <see cref="ReleasePath"/> for reading); call <see cref="End"/> on the same thread, always,
    /// once posix_spawn has returned.
    /// </summary>
    public void Begin(string procsPath)
    {
        _spawnLock.Enter();
        _spawnerTid = Libc.gettid();
        _before = ReadChildren(_spawnerTid) ?? [];
        _procsPath = procsPath;
        _joinError = 0;
        _spawnReturned = false;
        _state = WaitingArrival;
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
        while (true)
        {
            int arrived = Libc.open(ArrivePath, Libc.O_RDONLY | Libc.O_CLOEXEC, 0);
            if (arrived < 0)
            {
                if (Libc.LastError != Libc.EINTR)
                    Thread.Sleep(10);
                continue;
            }

            try
            {
                if (_state == WaitingArrival && !_spawnReturned)
                    Join();
            }
            catch (Exception)
            {
                _joinError = Libc.EIO;
            }
            finally
            {
                Libc.close(arrived);
                _state = Idle;
            }
        }
    }

    private void Join()
    {
        // The child has opened "arrive", so it is in the spawning thread's children list.
        int pid = 0;
        foreach (int child in ReadChildren(_spawnerTid) ?? [])
        {
            if (!_before.Contains(child))
            {
                pid = child;
                break;
            }
        }

        _state = WaitingRelease;
        int errno = pid == 0 ? Libc.ESRCH : Fd.WriteFile(_procsPath, pid.ToString(System.Globalization.CultureInfo.InvariantCulture));
        if (errno != 0)
        {
            // Not in the leaf: it must never exec. Kill it where it waits; posix_spawn then returns.
            _joinError = errno;
            if (pid != 0)
            {
                int pidfd = Libc.pidfd_open(pid);
                if (pidfd >= 0)
                {
                    Libc.pidfd_send_signal(pidfd, Libc.SIGKILL);
                    Libc.close(pidfd);
                }
            }

            if (pid != 0)
                return;

            // Unidentifiable child (should not happen): let it go and have the spawning thread kill it at once.
        }

        int release = Libc.open(ReleasePath, Libc.O_WRONLY | Libc.O_CLOEXEC, 0);
        if (release >= 0)
            Libc.close(release);
    }

    private static HashSet<int>? ReadChildren(int tid)
    {
        byte[] buffer = new byte[1024];
        int n = Fd.ReadFile($"/proc/self/task/{tid}/children", ref buffer);
        if (n < 0)
            return null;
        var result = new HashSet<int>();
        int value = 0;
        bool inNumber = false;
        for (int i = 0; i < n; i++)
        {
            byte b = buffer[i];
            if ((uint)(b - '0') <= 9)
            {
                value = value * 10 + (b - '0');
                inNumber = true;
            }
            else if (inNumber)
            {
                result.Add(value);
                value = 0;
                inNumber = false;
            }
        }

        if (inNumber)
            result.Add(value);
        return result;
    }

    private void Cleanup()
    {
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
    }
}
