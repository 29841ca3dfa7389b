using Corral.Agents;
using Corral.Processes;
using Corral.Server.Internal.Admission;
using Corral.Server.Internal.Agents;
using Corral.Server.Internal.Storage;

namespace Corral.Server.Internal.Isolation;

/// <summary>
/// What a task runs in. Without a user of its own: its working directory, when Corral makes it. With one
/// (<c>tasks/&lt;id&gt;/</c> is then traverse-only, 0711): a working directory, a HOME (seeded from the agent's
/// <c>HomeSeed</c>, with a resumed session's state) and a TMPDIR (its own <c>/tmp</c> when it has one), each owned by the task's uid and 0700; relative
/// workdirs in the workspace root are shared by the agents group (2770, setgid). After the run, <c>tasks/&lt;id&gt;/</c>
/// is closed (0700) before the uid can serve another task.
/// </summary>
internal sealed class TaskWorkspace(ServerPaths paths, TaskUsers users, AgentCatalog catalog)
{
    private readonly System.Collections.Concurrent.ConcurrentDictionary<int, byte> _made = new();

    /// <summary>
    /// The identity a task runs as. The agents group shares the workspace root's directories (and any an operator
    /// shares with it): only a task whose workdir is elsewhere than its own directory gets it, so a task in its own
    /// directory can reach no other task's workdir.
    /// </summary>
    public ProcessUser? RunAs(TaskPlan plan, ProcessUser? user) =>
        user is not null && plan.Request.WorkingDirectory.StartsWith(paths.TaskDirectory(plan.Id) + Path.DirectorySeparatorChar, StringComparison.Ordinal)
            ? user with { SupplementaryGroups = [] }
            : user;

    /// <summary>Creates the task's directories and returns the request to run (its environment completed for the user).</summary>
    public AgentRequest Prepare(TaskPlan plan, ProcessUser? user)
    {
        var request = plan.Request;
        if (user is null)
        {
            if (plan.CreateWorkdir)
                Files.CreatePrivateDirectory(request.WorkingDirectory);
            return request;
        }

        string taskDirectory = paths.TaskDirectory(plan.Id);
        if (plan.CreateWorkdir)
        {
            if (request.WorkingDirectory.StartsWith(taskDirectory + Path.DirectorySeparatorChar, StringComparison.Ordinal))
                Files.CreateOwnedDirectory(request.WorkingDirectory, user.Uid, user.Gid);
            else
                CreateShared(request.WorkingDirectory);
        }

        string home = Path.Combine(taskDirectory, "home");
        Files.CreateOwnedDirectory(home, user.Uid, user.Gid);
        // A new HOME stays empty (and the task's) unless a seed or a resumed session's state goes into it.
        bool filled = false;
        if (catalog.Find(plan.Agent)?.Options.HomeSeed is { } seed && Directory.Exists(seed))
        {
            Files.CopyTree(seed, home);
            filled = true;
        }

        if (request.ResumeSessionId is not null)
        {
            plan.Adapter.RestoreSession(request, home, paths.Sessions);
            filled = true;
        }

        if (filled)
            Files.Own(home, user.Uid, user.Gid);
        var own = PrivateDirectories(plan, user);
        if (own is not null)
            MakePrivateDirectories(user);
        string tmp = Path.Combine(taskDirectory, "tmp");
        bool privateTmp = own?.ContainsKey("/tmp") == true;
        if (!privateTmp)
            Files.CreateOwnedDirectory(tmp, user.Uid, user.Gid);
        // Traverse-only for the task's uid to reach its own directories (closed again at the end, or by a restart), last:
        // a task queued again after a crash finds its directories still the old uid's until they are made this one's.
        File.SetUnixFileMode(taskDirectory, Files.TraverseOnly);

        var environment = new Dictionary<string, string>(request.Environment ?? new Dictionary<string, string>(), StringComparer.Ordinal);
        environment.TryAdd("USER", $"corral-{user.Uid}");
        environment.TryAdd("LOGNAME", $"corral-{user.Uid}");
        if (privateTmp && environment.GetValueOrDefault("TMPDIR") == tmp)
            environment["TMPDIR"] = "/tmp"; // its own
        return request with { Environment = environment };
    }

    /// <summary>After <see cref="IAgentAdapter.Prepare"/>: the files it wrote for the task become the task's.</summary>
    public void Adopt(AgentRequest request, ProcessUser? user)
    {
        if (user is not null && Directory.Exists(request.TaskDirectory))
            Files.Own(request.TaskDirectory, user.Uid, user.Gid);
    }

    /// <summary>After the run: the session's state, for the next task that resumes it.</summary>
    public void Finish(TaskPlan plan, ProcessUser? user, string? sessionId)
    {
        if (user is null || sessionId is null)
            return;
        Files.CreatePrivateDirectory(paths.Sessions);
        plan.Adapter.SaveSession(plan.Request, sessionId, Path.Combine(paths.TaskDirectory(plan.Id), "home"), paths.Sessions);
    }

    /// <summary>
    /// What the task's tree sees in place of the host's shared directories (its uid's own), or <c>null</c>.
    /// A shared directory that holds the task's own directory or its workdir (a data directory or a repository under
    /// <c>/tmp</c>) stays shared: binding over it would hide them from the task (what it leaves there is swept).
    /// </summary>
    public IReadOnlyDictionary<string, string>? PrivateDirectories(TaskPlan plan, ProcessUser? user)
    {
        if (user is not { Exclusive: true } || users.PrivateDirectories.Count == 0)
            return null;
        string taskDirectory = paths.TaskDirectory(plan.Id);
        static bool Under(string path, string directory) => path == directory || path.StartsWith(directory + "/", StringComparison.Ordinal);
        string uidDirectory = paths.PrivateOf(user.Uid);
        var own = users.PrivateDirectories
            .Where(d => !Under(taskDirectory, d.Shared) && !Under(plan.Request.WorkingDirectory, d.Shared))
            .ToDictionary(d => d.Shared, d => Path.Combine(uidDirectory, d.Own));
        return own.Count > 0 ? own : null;
    }

    /// <summary>
    /// The uid's own directories, all of them, made once per uid by this process: each like a <c>/tmp</c> of that uid
    /// alone (root's, of the uid's own group, 1770), so the uid can write in it but change nothing of it (mode, owner,
    /// attributes, ACLs), and no other uid can use it even through a descriptor passed to it; under root's 0700
    /// <c>private/&lt;uid&gt;/</c>, which no task passes through: the uid's tree reaches them only through its mounts.
    /// The sweep empties them, as root, before the uid serves another task.
    /// </summary>
    private void MakePrivateDirectories(ProcessUser user)
    {
        if (_made.ContainsKey(user.Uid))
            return;
        Files.CreateOwnedDirectory(paths.Private, 0, 0);
        Files.CreateOwnedDirectory(paths.PrivateOf(user.Uid), 0, 0);
        foreach (var (_, own) in users.PrivateDirectories)
            Files.CreateOwnedDirectory(Path.Combine(paths.PrivateOf(user.Uid), own), 0, user.Gid, Files.OwnTmp);
        _made.TryAdd(user.Uid, 0);
    }

    /// <summary>
    /// Before its uid is given back: the task's directory becomes the server's alone (0700), so a later task that is
    /// handed the same uid cannot pass into the HOME, TMPDIR and workdir this one owned there.
    /// </summary>
    public void Close(TaskPlan plan, ProcessUser? user)
    {
        if (user is not { Exclusive: true })
            return;
        try
        {
            File.SetUnixFileMode(paths.TaskDirectory(plan.Id), Files.PrivateDirectory);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // deleted meanwhile; nothing to close
        }
    }

    /// <summary>Creates a workdir under the workspace root, and the root itself, as directories the agents group shares.</summary>
    private void CreateShared(string path)
    {
        if (!Directory.Exists(paths.WorkspaceRoot))
            Files.CreateOwnedDirectory(paths.WorkspaceRoot, 0, users.AgentsGroup, Files.SharedDirectory);
        // Tasks write in the workspace root: a name in it may become a link at any moment, so no path is followed.
        Files.CreateBeneath(paths.WorkspaceRoot, Path.GetRelativePath(paths.WorkspaceRoot, path), users.AgentsGroup, Files.SharedDirectory);
    }
}
