namespace Corral.Processes;

/// <summary>
/// Everything needed to start a contained process tree: what to run, where, with which input and output,
/// how it is contained, and how it is torn down. Immutable; derive variants with <c>with</c>.
/// </summary>
/// <param name="FileName">The program: an absolute or relative path, or a bare name looked up on <c>PATH</c>.</param>
/// <param name="Arguments">The arguments, passed as an argv array (never through a shell).</param>
public sealed record ProcessSpec(string FileName, IReadOnlyList<string> Arguments)
{
    /// <summary>Creates a spec for <paramref name="fileName"/> with the given arguments.</summary>
    public ProcessSpec(string fileName, params string[] arguments) : this(fileName, (IReadOnlyList<string>)arguments) { }

    /// <summary>The working directory of the child; <c>null</c> keeps the current directory.</summary>
    public string? WorkingDirectory { get; init; }

    /// <summary>Variables to set in the child's environment; a <c>null</c> value removes the variable.</summary>
    public IReadOnlyDictionary<string, string?> Environment { get; init; } = new Dictionary<string, string?>();

    /// <summary>Whether the child starts from this process's environment (<c>true</c>) or from an empty one.</summary>
    public bool InheritEnvironment { get; init; } = true;

    /// <summary>Where the child's standard input comes from. Default: <c>/dev/null</c>.</summary>
    public InputSource StandardInput { get; init; } = InputSource.Null;

    /// <summary>Where the child's standard output goes. Default: captured in memory.</summary>
    public OutputTarget StandardOutput { get; init; } = OutputTarget.Capture;

    /// <summary>Where the child's standard error goes. Default: captured in memory.</summary>
    public OutputTarget StandardError { get; init; } = OutputTarget.Capture;

    /// <summary>How the tree is contained. Default: a cgroup when the host allows it, otherwise a session.</summary>
    public ContainmentMode Containment { get; init; } = ContainmentMode.Auto;

    /// <summary>Overall deadline from start; when it passes, the teardown ladder runs and the reason is <see cref="ExitReason.TimedOut"/>.</summary>
    public TimeSpan? Timeout { get; init; }

    /// <summary>How the tree is stopped on timeout, cancellation, and for processes that linger after the child exits.</summary>
    public TeardownOptions Teardown { get; init; } = new();

    /// <summary>What happens to processes of the tree that are still alive when the direct child exits.</summary>
    public LingerPolicy Linger { get; init; } = LingerPolicy.Kill;

    /// <summary>With <see cref="LingerPolicy.Wait"/>: how long to wait for the tree to empty before it is killed.</summary>
    public TimeSpan LingerTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Bounds on captured output.</summary>
    public OutputLimits Limits { get; init; } = new();

    /// <summary>
    /// The user the tree runs as, with <c>no_new_privs</c> and a new, empty session keyring (Corral's is not
    /// inherited); <c>null</c> (the default) keeps Corral's own identity.
    /// </summary>
    public ProcessUser? User { get; init; }

    /// <summary>
    /// Directories the tree sees in place of others: each key (an existing absolute directory, such as <c>/tmp</c>)
    /// shows the directory of its value, in a mount namespace whose mounts reach nobody, so nothing the tree writes there
    /// reaches the host's or another tree's. Needs Corral's native spawn and CAP_SYS_ADMIN (root); otherwise the spawn
    /// fails with <see cref="SpawnFailure.ContainmentUnavailable"/>. <c>null</c> (the default): the host's directories.
    /// Trees that run as a <see cref="User"/> other than root, which cannot mount, share one namespace per set of
    /// directories (made once: joining it is cheaper than making one), while each value still names the directory it
    /// showed, for at most a minute; a tree running as root always has a namespace of its own.
    /// </summary>
    public IReadOnlyDictionary<string, string>? PrivateDirectories { get; init; }

    /// <summary>
    /// Whether the tree gets an IPC namespace of its own: the System V objects (shared memory, semaphores, message
    /// queues) and POSIX message queues it makes are out of every other tree's reach and go with its last process.
    /// Needs Corral's native spawn and CAP_SYS_ADMIN (root); otherwise the spawn fails with
    /// <see cref="SpawnFailure.ContainmentUnavailable"/>. Default: <c>false</c>.
    /// </summary>
    public bool PrivateIpc { get; init; }

    /// <summary>
    /// Whether the tree's <c>/proc</c> shows only the processes its user may inspect (its own): a procfs of its own,
    /// mounted with <c>hidepid=invisible</c> in the tree's mount namespace (with the <see cref="PrivateDirectories"/>, or
    /// one for this alone), so the command lines and states of other users' processes, other trees' and Corral's, are
    /// out of its sight. The host's <c>/proc</c> is not changed. Needs Corral's native spawn, CAP_SYS_ADMIN (root) and
    /// Linux 5.8 (a procfs mount with options of its own); otherwise the spawn fails with
    /// <see cref="SpawnFailure.ContainmentUnavailable"/>. Default: <c>false</c>.
    /// </summary>
    public bool OwnProcessesOnly { get; init; }

    /// <summary>Limits on the tree's memory, processes and CPU; <c>null</c> (the default) sets none.</summary>
    public ResourceLimits? ResourceLimits { get; init; }
}

/// <summary>The teardown ladder: optional stdin close, a first signal to the whole tree, a grace period, then SIGKILL.</summary>
public sealed record TeardownOptions
{
    /// <summary>The signal that starts the ladder. Default: SIGTERM.</summary>
    public StopSignal FirstSignal { get; init; } = StopSignal.Terminate;

    /// <summary>Time between the first signal and SIGKILL (or <c>cgroup.kill</c>). Default: 5 s.</summary>
    public TimeSpan Grace { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// When set, the ladder first closes the child's standard input (when it is a pipe) and waits this long for a
    /// voluntary exit before signalling. Default: not used.
    /// </summary>
    public TimeSpan? CloseInputGrace { get; init; }

    /// <summary>Bound on waiting for processes to disappear after SIGKILL, and on reading to EOF afterwards. Default: 5 s.</summary>
    public TimeSpan KillWait { get; init; } = TimeSpan.FromSeconds(5);
}

/// <summary>Limits on output held in memory.</summary>
public sealed record OutputLimits
{
    /// <summary>Longest line returned whole by <see cref="ProcessTree.ReadLinesAsync"/>; longer lines are split into fragments. Default: 1 MiB.</summary>
    public int MaxLineLength { get; init; } = 1 << 20;

    /// <summary>Most unread bytes kept per stream by <see cref="OutputTarget.Capture"/>. Default: 64 MiB.</summary>
    public long MaxBufferedBytes { get; init; } = 64L << 20;

    /// <summary>What happens when captured output would exceed <see cref="MaxBufferedBytes"/>. Default: keep the oldest bytes.</summary>
    public OverflowPolicy Overflow { get; init; } = OverflowPolicy.DropNewest;
}

/// <summary>What the capture buffer does once it holds <see cref="OutputLimits.MaxBufferedBytes"/> unread bytes.</summary>
public enum OverflowPolicy
{
    /// <summary>Keep what is buffered, drop new bytes (counted, and flagged as truncated).</summary>
    DropNewest,

    /// <summary>Drop the oldest unread bytes to make room (flagged as truncated): the tail survives.</summary>
    DropOldest,

    /// <summary>
    /// Stop reading the pipe until the consumer catches up; the child may block on write, and completion waits for
    /// the consumer to take what the child wrote. Nothing is lost.
    /// </summary>
    Wait,
}

/// <summary>The signal that starts the teardown ladder.</summary>
public enum StopSignal
{
    /// <summary>SIGTERM (15).</summary>
    Terminate = 15,

    /// <summary>SIGINT (2), as a terminal's Ctrl+C.</summary>
    Interrupt = 2,

    /// <summary>SIGHUP (1).</summary>
    Hangup = 1,

    /// <summary>SIGKILL (9) at once, without closing stdin first: for a tree that must be gone now (a node that lost its lease).</summary>
    Kill = 9,
}

/// <summary>How a tree is contained.</summary>
public enum ContainmentMode
{
    /// <summary>A cgroup v2 leaf when a writable hierarchy with <c>cgroup.kill</c> exists; otherwise a session.</summary>
    Auto,

    /// <summary>Require a cgroup; starting fails when none is available.</summary>
    Cgroup,

    /// <summary>The fallback: a new session plus a <c>/proc</c> scan for pipe holders and the tree's environment tag.</summary>
    Session,
}

/// <summary>What to do with processes of the tree that outlive the direct child.</summary>
public enum LingerPolicy
{
    /// <summary>Run the teardown ladder on them (first signal, grace, SIGKILL).</summary>
    Kill,

    /// <summary>Keep reading until the tree is empty or <see cref="ProcessSpec.LingerTimeout"/> passes, then kill what remains.</summary>
    Wait,

    /// <summary>Leave them running and stop reading (after taking what is already in the pipes).</summary>
    Detach,
}
