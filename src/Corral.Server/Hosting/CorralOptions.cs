namespace Corral.Server.Hosting;

/// <summary>Server settings, bound from the <c>Corral</c> configuration section (appsettings.json, <c>Corral__…</c> environment variables).</summary>
public sealed class CorralOptions
{
    /// <summary>The configuration section.</summary>
    public const string Section = "Corral";

    /// <summary>Tasks that run at the same time. Default: 4.</summary>
    public int MaxConcurrentTasks { get; set; } = 4;

    /// <summary>Tasks that may wait for a slot; beyond that, 429. Default: 32.</summary>
    public int MaxQueuedTasks { get; set; } = 32;

    /// <summary>The <c>Retry-After</c> sent with 429 and 503. Default: 5 s.</summary>
    public int RetryAfterSeconds { get; set; } = 5;

    /// <summary>Default <c>limits.timeoutSeconds</c>: the whole task. Default: 3600.</summary>
    public double DefaultTimeoutSeconds { get; set; } = 3600;

    /// <summary>Default <c>limits.stallTimeoutSeconds</c>: no output at all. Default: 900 (long tool calls are silent). 0 turns it off.</summary>
    public double DefaultStallTimeoutSeconds { get; set; } = 900;

    /// <summary>Longest <c>?wait=</c> honoured. Default: 3600.</summary>
    public double MaxWaitSeconds { get; set; } = 3600;

    /// <summary>After an interrupt request, how long to wait for the agent's result before the process ladder. Default: 10.</summary>
    public double InterruptGraceSeconds { get; set; } = 10;

    /// <summary>After the result, how long the agent may take to exit once stdin is closed. Default: 10.</summary>
    public double ExitGraceSeconds { get; set; } = 10;

    /// <summary>Process ladder: wait after closing stdin before the first signal. Default: 5.</summary>
    public double CloseInputGraceSeconds { get; set; } = 5;

    /// <summary>Process ladder: wait between SIGTERM and SIGKILL. Default: 5.</summary>
    public double TerminateGraceSeconds { get; set; } = 5;

    /// <summary>Idle time after which an event stream gets a keep-alive comment. Default: 15.</summary>
    public double KeepAliveSeconds { get; set; } = 15;

    /// <summary>An event-stream client that has not taken what it was sent for this long is dropped (it can reconnect with Last-Event-ID). Default: 30.</summary>
    public double SlowClientSeconds { get; set; } = 30;

    /// <summary>The largest request body; larger ones get 413. Default: 1 MiB.</summary>
    public long MaxRequestBodyBytes { get; set; } = 1 << 20;

    /// <summary>Where relative <c>workdir</c>s live. Default: <c>&lt;data&gt;/workspaces</c>.</summary>
    public string? WorkspaceRoot { get; set; }

    /// <summary>Default and largest <c>limits.maxOutputBytes</c>: output stored per task. Default: 1 GiB.</summary>
    public long MaxOutputBytes { get; set; } = 1L << 30;

    /// <summary>Finished tasks older than this many days are deleted with their files. Default: 14; 0 keeps everything.</summary>
    public double RetentionDays { get; set; } = 14;

    /// <summary>How often the retention sweep runs, in minutes. Default: 60.</summary>
    public double RetentionSweepMinutes { get; set; } = 60;

    /// <summary>How often a running task's journal and output files are made durable (fdatasync), in seconds; they always are at the end of a task. Default: 2.</summary>
    public double SyncIntervalSeconds { get; set; } = 2;

    /// <summary>How long creating a task may wait for a busy or locked database before it is refused with 503. Default: 10.</summary>
    public double StoreWriteTimeoutSeconds { get; set; } = 10;

    /// <summary>Below this much free space in the data directory, new tasks are refused with 507 <c>storage_full</c>. Default: 64.</summary>
    public long MinFreeDiskMb { get; set; } = 64;

    /// <summary>How task trees are contained: <c>Auto</c> (a cgroup where the host allows it, else a session), <c>Cgroup</c> (required), <c>Session</c>. Default: Auto.</summary>
    public Corral.Processes.ContainmentMode Containment { get; set; } = Corral.Processes.ContainmentMode.Auto;

    /// <summary>Who tasks run as (each its own uid, by default when the server runs as root).</summary>
    public IsolationOptions Isolation { get; set; } = new();

    /// <summary>Default and largest resource limits of a task, and how the node's memory is shared out.</summary>
    public LimitOptions Limits { get; set; } = new();

    /// <summary>Space kept in reserve (a file in the data directory) and given back when the disk fills up, so that final records can still be written. Default: 8.</summary>
    public long DiskReserveMb { get; set; } = 8;

    /// <summary>The shared PostgreSQL of a fleet (section <c>Corral:Postgres</c>); without it, the node keeps its tasks in SQLite.</summary>
    public PostgresOptions Postgres { get; set; } = new();

    /// <summary>How the nodes of a fleet share the work (section <c>Corral:Fleet</c>).</summary>
    public FleetOptions Fleet { get; set; } = new();

    /// <summary>Signed webhooks at the end of tasks (section <c>Corral:Webhooks</c>).</summary>
    public WebhookOptions Webhooks { get; set; } = new();
}

/// <summary>Signed webhooks (section <c>Corral:Webhooks</c>); without a <see cref="Secret"/>, there are none.</summary>
public sealed class WebhookOptions
{
    /// <summary>The signing secret: <c>whsec_</c> and the base64 of 24 to 64 random bytes. Never shown, logged or given to a task. Default: none (webhooks are off).</summary>
    public string? Secret { get; set; }

    /// <summary>
    /// The URL prefixes a task's own webhook may start with (ordinal, exact), e.g. <c>https://hooks.example.com/</c>; a
    /// task may name no other, so the server cannot be used to reach internal services. Default: none (tasks name no webhook).
    /// </summary>
    public List<string> AllowedUrlPrefixes { get; set; } = [];

    /// <summary>Webhooks every task gets (trusted: no prefix check).</summary>
    public List<DefaultWebhookOptions> Defaults { get; set; } = [];

    /// <summary>Attempts per delivery before it is given up. Default: 8.</summary>
    public int MaxAttempts { get; set; } = 8;

    /// <summary>How long after its event a delivery is still tried, in seconds. Default: 3600.</summary>
    public double MaxAgeSeconds { get; set; } = 3600;

    /// <summary>How long one attempt may take, in seconds. Default: 10.</summary>
    public double TimeoutSeconds { get; set; } = 10;

    /// <summary>The wait after the first failed attempt, in seconds; it doubles after each (with jitter). Default: 1.</summary>
    public double FirstRetrySeconds { get; set; } = 1;

    /// <summary>The longest wait between attempts, in seconds. Default: 300.</summary>
    public double MaxRetrySeconds { get; set; } = 300;
}

/// <summary>A webhook every task gets (section <c>Corral:Webhooks:Defaults:N</c>).</summary>
public sealed class DefaultWebhookOptions
{
    /// <summary>An absolute http or https URL.</summary>
    public string? Url { get; set; }

    /// <summary><c>end</c> (the default) and optionally <c>status</c>.</summary>
    public List<string> Events { get; set; } = [];
}

/// <summary>The fleet's database (section <c>Corral:Postgres</c>).</summary>
public sealed class PostgresOptions
{
    /// <summary>An Npgsql connection string, e.g. <c>Host=db;Username=corral;Password=…;Database=corral</c>. Default: none (one node, SQLite).</summary>
    public string? ConnectionString { get; set; }
}

/// <summary>How the nodes of a fleet share the work (section <c>Corral:Fleet</c>).</summary>
public sealed class FleetOptions
{
    /// <summary>
    /// How long a node's hold on its running tasks lasts without a renewal (renewed every sixth of it, on the database's
    /// clock). A node that cannot renew kills its trees before it runs out; another node then marks them interrupted.
    /// Default: 15.
    /// </summary>
    public double LeaseSeconds { get; set; } = 15;

    /// <summary>This node's name in the fleet (the records' <c>node</c>). Default: the host name and a short random suffix, kept in the data directory.</summary>
    public string? NodeId { get; set; }
}

/// <summary>Who tasks run as (section <c>Corral:Isolation</c>).</summary>
public sealed class IsolationOptions
{
    /// <summary>The value of <see cref="User"/> that gives every task a fresh uid of its own.</summary>
    public const string Dynamic = "dynamic";

    /// <summary>The value of <see cref="User"/> that runs tasks as the server's own user.</summary>
    public const string None = "none";

    /// <summary>
    /// <c>dynamic</c> (a fresh uid per task from <see cref="UidRangeStart"/>; the default when the server runs as root),
    /// <c>none</c> (the server's own user; the default otherwise), or a user name or <c>UID[:GID]</c> every task runs as.
    /// </summary>
    public string? User { get; set; }

    /// <summary>
    /// First uid of the dynamic range. Default: 1,900,000,000, above the container ranges systemd documents and below
    /// 2^31, so it collides with no host user, no DynamicUser= and no subordinate range of useradd's defaults (the
    /// server checks /etc/passwd and /etc/subuid at start).
    /// </summary>
    public int UidRangeStart { get; set; } = 1_900_000_000;

    /// <summary>How many uids the dynamic range holds. Default: 65,536.</summary>
    public int UidRangeCount { get; set; } = 65_536;

    /// <summary>
    /// Where every Corral server on this host leases its dynamic uids (one locked file per uid in use), so two servers
    /// (two data directories, or fleet nodes sharing a host) never hand out the same uid: an exclusive uid's teardown
    /// kills every process of it. Default: <c>/run/corral/uids</c>.
    /// </summary>
    public string UidLeaseDirectory { get; set; } = "/run/corral/uids";

    /// <summary>
    /// The group every dynamic uid is a member of (supplementary): give it access to shared workdirs (the workspace
    /// root is made group-owned by it and setgid; for absolute workdirs, <c>chgrp</c> them to it). Default: <see cref="UidRangeStart"/> − 1.
    /// </summary>
    public int? AgentsGroup { get; set; }

    /// <summary>
    /// The host's shared writable directories, separated by <c>:</c>, from which what a task's uid left is removed
    /// after the task and before the uid is handed out again (so a later task of that uid cannot read it); empty turns
    /// this off. Default: <c>/tmp:/var/tmp:/dev/shm:/dev/mqueue:/run/lock</c> (a POSIX message queue made through that mount is
    /// the host's, whatever the task's IPC namespace).
    /// </summary>
    public string SweepDirectories { get; set; } = "/tmp:/var/tmp:/dev/shm:/dev/mqueue:/run/lock";

    /// <summary>
    /// Whether a task with a uid of its own sees directories of its own in place of the shared ones of
    /// <see cref="SweepDirectories"/> (its uid's, under <c>private/&lt;uid&gt;/</c> in the data directory, emptied before the
    /// uid serves another task; <c>/tmp</c> is its TMPDIR), so nothing it writes there reaches the host or another task.
    /// Used when the host allows it (checked at start). Default: <c>true</c>.
    /// </summary>
    public bool PrivateTmp { get; set; } = true;

    /// <summary>
    /// Whether a task with a uid of its own gets an IPC namespace of its own, so the System V objects and POSIX message
    /// queues it makes reach no other task and go with it (a swept uid serves again soon; the sweep cannot see these).
    /// Used when the host allows it (checked at start). Default: <c>true</c>.
    /// </summary>
    public bool PrivateIpc { get; set; } = true;

    /// <summary>
    /// Whether a task with a uid of its own sees in <c>/proc</c> only its own processes (a procfs of its own with
    /// <c>hidepid=invisible</c>), so other tasks' and the server's command lines and states are out of its sight.
    /// Used when the host allows it (Linux 5.8; checked at start). Default: <c>true</c>.
    /// </summary>
    public bool OwnProcessesOnly { get; set; } = true;
}

/// <summary>Resource limits of tasks (section <c>Corral:Limits</c>): defaults for tasks that set none, and the largest a task may ask for.</summary>
public sealed class LimitOptions
{
    /// <summary>Default <c>limits.memoryMaxMb</c>. Default: none.</summary>
    public long? MemoryMaxMb { get; set; }

    /// <summary>Largest <c>limits.memoryMaxMb</c> a task may ask for. Default: none.</summary>
    public long? MaxMemoryMaxMb { get; set; }

    /// <summary>Default <c>limits.pidsMax</c> (a fork bomb stops there). Default: 4,096.</summary>
    public int? PidsMax { get; set; } = 4096;

    /// <summary>Largest <c>limits.pidsMax</c>. Default: none.</summary>
    public int? MaxPidsMax { get; set; }

    /// <summary>Default <c>limits.cpuMax</c>, in cores. Default: none.</summary>
    public double? CpuMax { get; set; }

    /// <summary>Largest <c>limits.cpuMax</c>. Default: none.</summary>
    public double? MaxCpuMax { get; set; }

    /// <summary>Memory kept for everything but tasks: a task whose memory limit does not fit what is left waits in the queue. Default: 512.</summary>
    public long MemoryReserveMb { get; set; } = 512;

    /// <summary>What the node gives tasks in all, in MiB; default: its MemTotal. Tasks' memory limits together stay within it less the reserve.</summary>
    public long? NodeMemoryMb { get; set; }

    /// <summary>While the node's memory pressure (PSI <c>some avg10</c>, percent) is above this, no task starts. Default: 20.</summary>
    public double MaxMemoryPressure { get; set; } = 20;
}

/// <summary>
/// Settings of one agent, bound from its section (<c>Corral:ClaudeCode</c>, <c>Corral:Command</c>, <c>Corral:Codex</c>,
/// <c>Corral:Gemini</c>, or the section an added agent is registered with).
/// </summary>
public sealed class AgentOptions
{
    /// <summary>Whether tasks may use it. Default: true.</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>The CLI: a path, or a name looked up on <c>PATH</c>. Default: the agent's own (<c>claude</c>, <c>codex</c>, <c>gemini</c>).</summary>
    public string? Executable { get; set; }

    /// <summary>Arguments added to every launch (Claude Code).</summary>
    public List<string> ExtraArguments { get; set; } = [];

    /// <summary>Variables every task of this agent gets (name → value), on top of the minimal environment.</summary>
    public Dictionary<string, string> Environment { get; set; } = [];

    /// <summary>Names of the server's own environment variables passed to this agent's tasks (e.g. <c>PATH</c> additions, proxies).</summary>
    public List<string> PassEnvironment { get; set; } = [];

    /// <summary>Secret variables every task of this agent gets (name → value): masked wherever the task's output is kept or sent.</summary>
    public Dictionary<string, string> Secrets { get; set; } = [];

    /// <summary>
    /// With a uid per task: a directory copied into every task's fresh HOME (owned by the task's uid), e.g. the
    /// <c>.claude</c> directory and <c>.claude.json</c> Claude Code needs for its credentials and settings.
    /// </summary>
    public string? HomeSeed { get; set; }

    /// <summary>Names of the server's own environment variables passed as secrets (e.g. <c>ANTHROPIC_API_KEY</c>): masked like <see cref="Secrets"/>.</summary>
    public List<string> PassSecrets { get; set; } = [];
}
