using System.Text.Json;
using Corral.Processes;
using Corral.Server.Api;
using Corral.Server.Internal.Running;
using Corral.Server.Internal.Storage;
using Corral.Server.Internal.Storage.Journal;

namespace Corral.Server.Internal.Recovery;

/// <summary>
/// The final record of a task that was running when what ran it went away (the server's previous process, or a node
/// of the fleet): interrupted, with what its journal says of its tree and its output. One shape wherever it is decided.
/// </summary>
internal static class Interruption
{
    /// <summary>
    /// <paramref name="record"/> interrupted at <paramref name="at"/> for <paramref name="message"/>; its process and output
    /// are the ones it recorded, else placeholders made from <paramref name="journal"/> (what reached it is what was
    /// stored; what the cap dropped, as last noted).
    /// </summary>
    public static TaskRecord Of(TaskRecord record, JournalFacts journal, TreeIdentity? tree, long maxOutputBytes, DateTimeOffset at,
        IReadOnlyList<KilledProcess> killed, string message)
    {
        var startedAt = record.StartedAt ?? journal.Start?.At;
        return record with
        {
            Status = TaskState.Interrupted,
            QueueReason = null,
            StartedAt = startedAt,
            EndedAt = at,
            DurationMs = startedAt is { } s ? (long)(at - s).TotalMilliseconds : null,
            Error = new TaskError(ErrorCodes.Interrupted, message),
            Process = (record.Process ?? Placeholder(journal, tree, startedAt ?? at, at, killed)) with { Killed = killed },
            Output = record.Output ?? new TaskOutput(journal.StdoutBytes + journal.StderrBytes, journal.Dropped.Stdout + journal.Dropped.Stderr, maxOutputBytes, 0),
        };
    }

    /// <summary>The output cap a stored request asked for, else <paramref name="serverDefault"/>.</summary>
    public static long MaxOutputBytes(string requestJson, long serverDefault) => RequestOf(requestJson)?.Limits?.MaxOutputBytes ?? serverDefault;

    /// <summary>
    /// Whether the mask replaced a secret's value in a stored request (the placeholder of one of
    /// <paramref name="mask"/>'s names is in it): then it is not the request the task runs with.
    /// </summary>
    public static bool HeldSecrets(string json, Secrets.SecretMask? mask) =>
        mask?.Names.Any(name => json.Contains($"[secret:{name}]", StringComparison.Ordinal)) == true;

    /// <summary>A stored request, or <c>null</c> when the mask made it unreadable (a secret equal to a number in it).</summary>
    public static CreateTaskRequest? RequestOf(string json)
    {
        try
        {
            return JsonSerializer.Deserialize<CreateTaskRequest>(json, ApiJson.Options);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>
    /// What is known of a tree whose task never recorded an outcome: its command, its child, the output that reached the
    /// journal; the child's exit status only when it was killed here (SIGKILL), for otherwise it went with its server.
    /// </summary>
    private static ProcessOutcome Placeholder(JournalFacts journal, TreeIdentity? tree, DateTimeOffset startedAt, DateTimeOffset at, IReadOnlyList<KilledProcess> killed) => new()
    {
        Command = journal.Start?.Command ?? [],
        Pid = tree?.Pid ?? 0,
        TreeId = tree?.TreeId ?? "",
        Reason = ExitReason.Canceled,
        Signal = tree is { Pid: > 0 } t && killed.Any(k => k.Pid == t.Pid) ? 9 : null,
        StartedAt = startedAt,
        ExitedAt = at,
        CompletedAt = at,
        Containment = tree?.CgroupPath is null ? ContainmentKind.Session : ContainmentKind.Cgroup,
        StandardOutputBytes = journal.StdoutBytes + journal.Dropped.Stdout, // read: stored and dropped
        StandardErrorBytes = journal.StderrBytes + journal.Dropped.Stderr,
        StandardOutputTruncated = journal.Dropped.Stdout > 0,
        StandardErrorTruncated = journal.Dropped.Stderr > 0,
    };
}
