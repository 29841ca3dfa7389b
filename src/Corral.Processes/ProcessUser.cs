using System.Globalization;
using Corral.Processes.Internal.Spawning;

namespace Corral.Processes;

/// <summary>
/// The identity a tree runs as. The child takes it before it execs: supplementary groups (exactly these; none when
/// the list is empty), then the group id, then the user id (real, effective and saved alike), then
/// <c>no_new_privs</c>, so that nothing in the tree can regain privileges (setuid binaries and file capabilities are
/// ignored). The working directory is entered after the change, so its permission checks, like the program's
/// execute permission, are the user's.
/// </summary>
/// <remarks>
/// Needs Corral's native spawn (built with a C compiler, x86-64) and the privilege to change identity (root, or
/// CAP_SETUID and CAP_SETGID). Without them <see cref="ProcessTree.Start"/> throws <see cref="ProcessSpawnException"/>
/// with <see cref="SpawnFailure.UserUnavailable"/>: the posix_spawn fallback cannot change identity between fork and
/// exec, so it refuses rather than run the tree as Corral's own user. The environment is the spec's: set
/// <c>HOME</c>, <c>USER</c> and the like there when the program needs them.
/// </remarks>
/// <param name="Uid">The user id, 0 to <see cref="int.MaxValue"/>.</param>
/// <param name="Gid">The group id, 0 to <see cref="int.MaxValue"/>.</param>
public sealed record ProcessUser(int Uid, int Gid)
{
    /// <summary>The supplementary groups; empty (the default) drops every group the caller has.</summary>
    public IReadOnlyList<int> SupplementaryGroups { get; init; } = [];

    /// <summary>
    /// Declares that every process of <see cref="Uid"/> belongs to this tree, now and for as long as the tree runs
    /// (a uid allocated to it alone). Teardown then also finds, by the <c>Uid:</c> line of <c>/proc/PID/status</c>
    /// (real, effective and saved uid all equal to <see cref="Uid"/>), every process of that uid created since the
    /// tree's child, wherever it went: escapees that left the session, cleared their environment and closed the
    /// pipes, and in cgroup mode processes that got out of the leaf. They are reported as
    /// <see cref="FoundBy.Uid"/>. The uid's own keyrings (<c>@u</c>, <c>@us</c>, the persistent one), which the kernel keeps after its
    /// last process, are emptied as the tree starts, so nothing an earlier tree of the uid put there reaches it. Never
    /// allowed for uid 0 or Corral's own uid. The caller guarantees the exclusivity: Corral signals what the
    /// declaration makes the tree's.
    /// </summary>
    public bool Exclusive { get; init; }

    /// <summary>
    /// Parses <c>NAME</c>, <c>UID</c>, <c>NAME:GID</c> or <c>UID:GID</c>. A name is looked up in the user database
    /// (NSS), which gives the uid, the group id and the supplementary groups. A numeric uid uses its passwd entry
    /// the same way when it has one; without one it is accepted as is, with the group id equal to the uid and no
    /// supplementary groups. <c>:GID</c> replaces the group id (a user's supplementary groups are then those of the
    /// user with that primary group).
    /// </summary>
    /// <exception cref="ArgumentException">The text is malformed or names no user.</exception>
    public static ProcessUser Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        string who = text;
        int? gid = null;
        int colon = text.IndexOf(':', StringComparison.Ordinal);
        if (colon >= 0)
        {
            who = text[..colon];
            gid = ParseId(text[(colon + 1)..], "group id", text);
        }

        if (who.Length == 0)
            throw new ArgumentException($"'{text}' names no user: use NAME, UID, NAME:GID or UID:GID.", nameof(text));
        var entry = who.All(char.IsAsciiDigit)
            ? UserDatabase.ByUid(ParseId(who, "user id", text))
            : UserDatabase.ByName(who) ?? throw new ArgumentException($"No user named '{who}'.", nameof(text));
        if (entry is null)
        {
            int uid = ParseId(who, "user id", text);
            return new ProcessUser(uid, gid ?? uid);
        }

        int primary = gid ?? entry.Value.Gid;
        return new ProcessUser(entry.Value.Uid, primary) { SupplementaryGroups = UserDatabase.Groups(entry.Value.Name, primary) };
    }

    private static int ParseId(string digits, string what, string text)
    {
        if (digits.Length == 0 || !digits.All(char.IsAsciiDigit)
            || !int.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out int id))
            throw new ArgumentException($"'{text}': the {what} must be a number from 0 to {int.MaxValue}.", nameof(text));
        return id;
    }
}
