using Corral.Processes.Interop;

namespace Corral.Processes.Internal.Spawning;

/// <summary>A validated spec: every check that can fail has run, before anything is created.</summary>
internal sealed record SpawnRequest(
    string ExecutablePath,
    IReadOnlyList<string> Argv,
    IReadOnlyList<string> Environment,
    string? WorkingDirectory,
    ProcessUser? User = null,
    IReadOnlyList<(string Target, string Source)>? PrivateMounts = null,
    bool PrivateIpc = false,
    bool OwnProcessesOnly = false)
{
    /// <summary>Whether the tree needs a mount namespace: for its private directories, or for a <c>/proc</c> of its own.</summary>
    public bool NeedsMountNamespace => Mounts.Count > 0 || OwnProcessesOnly;

    /// <summary>The directories the tree sees in place of others (target, source), in a mount namespace of its own.</summary>
    public IReadOnlyList<(string Target, string Source)> Mounts => PrivateMounts ?? [];

    public const string TreeIdVariable = "CORRAL_TREE_ID";

    public static SpawnRequest Validate(ProcessSpec spec, string treeId)
    {
        ArgumentNullException.ThrowIfNull(spec);
        string file = spec.FileName ?? "";
        if (file.Length == 0)
            throw new ProcessSpawnException(SpawnFailure.InvalidArgument, file, "the program name is empty");
        if (file.Contains('\0'))
            throw new ProcessSpawnException(SpawnFailure.InvalidArgument, file, "the program name contains a NUL character");
        var args = spec.Arguments ?? [];
        for (int i = 0; i < args.Count; i++)
        {
            if (args[i] is null)
                throw new ProcessSpawnException(SpawnFailure.InvalidArgument, file, $"argument {i} is null");
            if (args[i].Contains('\0'))
                throw new ProcessSpawnException(SpawnFailure.InvalidArgument, file, $"argument {i} contains a NUL character");
        }

        string? cwd = spec.WorkingDirectory;
        if (cwd is not null)
        {
            if (cwd.Length == 0 || cwd.Contains('\0'))
                throw new ProcessSpawnException(SpawnFailure.BadWorkingDirectory, cwd, "the working directory is empty or contains a NUL character");
            cwd = Path.GetFullPath(cwd);
            if (!Directory.Exists(cwd))
                throw new ProcessSpawnException(SpawnFailure.BadWorkingDirectory, cwd, "the working directory does not exist", Libc.ENOENT);
            if (Libc.access(cwd, Libc.X_OK) != 0)
                throw new ProcessSpawnException(SpawnFailure.BadWorkingDirectory, cwd, "the working directory cannot be entered: " + Libc.Describe(Libc.LastError), Libc.LastError);
        }

        CheckUser(spec.User, file);
        CheckLimits(spec.ResourceLimits, file);
        var environment = BuildEnvironment(spec, treeId, file);
        string? path = environment.FirstOrDefault(e => e.StartsWith("PATH=", StringComparison.Ordinal))?[5..]
                       ?? System.Environment.GetEnvironmentVariable("PATH");
        string executable = Resolve(file, path);

        var argv = new List<string>(args.Count + 1) { executable };
        argv.AddRange(args);
        return new SpawnRequest(executable, argv, environment, cwd, spec.User, PrivateMountsOf(spec.PrivateDirectories, file), spec.PrivateIpc, spec.OwnProcessesOnly);
    }

    private static List<(string Target, string Source)>? PrivateMountsOf(IReadOnlyDictionary<string, string>? directories, string file)
    {
        if (directories is not { Count: > 0 })
            return null;
        if (directories.Count > 16)
            throw new ProcessSpawnException(SpawnFailure.InvalidArgument, file, "at most 16 private directories");
        var mounts = new List<(string, string)>();
        foreach (var (target, source) in directories)
        {
            foreach (string path in new[] { target, source })
            {
                if (path is null || !Path.IsPathFullyQualified(path) || path.Contains('\0'))
                    throw new ProcessSpawnException(SpawnFailure.InvalidArgument, file, $"a private directory is not an absolute path: '{path}'");
                if (!Directory.Exists(path))
                    throw new ProcessSpawnException(SpawnFailure.InvalidArgument, file, $"a private directory does not exist: '{path}'", Libc.ENOENT);
            }

            mounts.Add((target, source));
        }

        return mounts;
    }

    /// <summary>The most supplementary groups the kernel accepts (NGROUPS_MAX).</summary>
    private const int MaxGroups = 65536;

    private static void CheckUser(ProcessUser? user, string file)
    {
        if (user is null)
            return;
        if (user.Uid < 0 || user.Gid < 0)
            throw new ProcessSpawnException(SpawnFailure.InvalidArgument, file, $"user {user.Uid}:{user.Gid}: ids cannot be negative");
        var groups = user.SupplementaryGroups ?? [];
        if (groups.Count > MaxGroups || groups.Any(g => g < 0))
            throw new ProcessSpawnException(SpawnFailure.InvalidArgument, file, $"user {user.Uid}: at most {MaxGroups} supplementary groups, none negative");
        if (user.Exclusive && (user.Uid == 0 || (uint)user.Uid == Libc.getuid() || (uint)user.Uid == Libc.geteuid()))
        {
            throw new ProcessSpawnException(SpawnFailure.InvalidArgument, file,
                $"uid {user.Uid} cannot be exclusive to a tree: it is {(user.Uid == 0 ? "root" : "Corral's own uid")}, whose other processes are not the tree's");
        }
    }

    private static void CheckLimits(ResourceLimits? limits, string file)
    {
        if (limits is null)
            return;
        if (limits.MemoryMaxBytes is <= 0)
            throw new ProcessSpawnException(SpawnFailure.InvalidArgument, file, $"the memory limit must be positive, not {limits.MemoryMaxBytes}");
        if (limits.SwapMaxBytes is < 0)
            throw new ProcessSpawnException(SpawnFailure.InvalidArgument, file, $"the swap limit cannot be negative ({limits.SwapMaxBytes})");
        if (limits.PidsMax is <= 0)
            throw new ProcessSpawnException(SpawnFailure.InvalidArgument, file, $"the process limit must be positive, not {limits.PidsMax}");
        if (limits.CpuMax is { } cores && !(cores >= Internal.Containment.LeafLimits.MinCpuCores && cores <= Internal.Containment.LeafLimits.MaxCpuCores))
        {
            throw new ProcessSpawnException(SpawnFailure.InvalidArgument, file,
                $"the CPU limit must be from {Internal.Containment.LeafLimits.MinCpuCores} to {Internal.Containment.LeafLimits.MaxCpuCores} cores, not {cores}");
        }
    }

    private static List<string> BuildEnvironment(ProcessSpec spec, string treeId, string file)
    {
        var variables = new Dictionary<string, string>(StringComparer.Ordinal);
        if (spec.InheritEnvironment)
        {
            foreach (System.Collections.DictionaryEntry e in System.Environment.GetEnvironmentVariables())
                variables[(string)e.Key] = (string?)e.Value ?? "";
        }

        foreach (var (key, value) in spec.Environment ?? new Dictionary<string, string?>())
        {
            if (string.IsNullOrEmpty(key) || key.Contains('=') || key.Contains('\0'))
                throw new ProcessSpawnException(SpawnFailure.InvalidArgument, file, $"environment variable name '{key}' is empty or contains '=' or NUL");
            if (value is null)
            {
                variables.Remove(key);
                continue;
            }

            if (value.Contains('\0'))
                throw new ProcessSpawnException(SpawnFailure.InvalidArgument, file, $"environment variable '{key}' contains a NUL character");
            variables[key] = value;
        }

        // The tag lets the fallback find escapees that left the session; a caller cannot override it.
        variables[TreeIdVariable] = treeId;
        return variables.Select(kv => kv.Key + "=" + kv.Value).ToList();
    }

    private static string Resolve(string file, string? searchPath)
    {
        if (file.Contains('/'))
            return Check(Path.GetFullPath(file));

        foreach (string dir in (searchPath ?? "/usr/local/bin:/usr/bin:/bin").Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            string candidate = Path.Combine(dir, file);
            if (File.Exists(candidate) && Libc.access(candidate, Libc.X_OK) == 0)
                return Path.GetFullPath(candidate);
        }

        throw new ProcessSpawnException(SpawnFailure.FileNotFound, file, "not found on PATH", Libc.ENOENT);
    }

    private static string Check(string path)
    {
        if (Directory.Exists(path))
            throw new ProcessSpawnException(SpawnFailure.NotExecutable, path, "is a directory", Libc.EISDIR);
        if (!File.Exists(path))
            throw new ProcessSpawnException(SpawnFailure.FileNotFound, path, "no such file", Libc.ENOENT);
        if (Libc.access(path, Libc.X_OK) != 0)
            throw new ProcessSpawnException(SpawnFailure.NotExecutable, path, "not executable: " + Libc.Describe(Libc.LastError), Libc.LastError);
        return path;
    }
}
