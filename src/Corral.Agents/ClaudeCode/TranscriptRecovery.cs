using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Corral.Agents.Internal;

namespace Corral.Agents.ClaudeCode;

/// <summary>A final answer rebuilt from a Claude Code session transcript.</summary>
/// <param name="Text">The text of the final assistant message.</param>
/// <param name="Usage">That message's usage, when present.</param>
public sealed record RecoveredResult(string Text, JsonObject? Usage);

/// <summary>
/// Reads <c>&lt;projects&gt;/&lt;cwd-slug&gt;/&lt;session&gt;.jsonl</c> and trusts it only when its last conversation
/// entry is an assistant message that stopped with <c>end_turn</c>; anything else fails closed.
/// </summary>
public static class TranscriptRecovery
{
    /// <summary>How much of the end of a transcript is read for its final answer.</summary>
    internal const int TailBytes = 8 << 20;

    /// <summary>The directory name Claude Code uses for a working directory: every non-alphanumeric character becomes '-'.</summary>
    public static string Slug(string cwd)
    {
        var sb = new StringBuilder(cwd.Length);
        foreach (char c in cwd)
            sb.Append(char.IsAsciiLetterOrDigit(c) ? c : '-');
        return sb.ToString();
    }

    /// <summary>
    /// The recovered result, or <c>null</c> when the transcript is missing or does not end in a final answer. Nothing
    /// beneath <paramref name="projectsDirectory"/> is followed through a link, and only a regular file of the
    /// directory's owner is read (see <see cref="TryRecover(string, string, string, string)"/> for a directory the
    /// agent may have made a link).
    /// </summary>
    public static RecoveredResult? TryRecover(string projectsDirectory, string cwd, string sessionId) => TryRecover(projectsDirectory, "", cwd, sessionId);

    /// <summary>
    /// As <see cref="TryRecover(string, string, string)"/>, for the projects directory at <paramref name="projects"/>
    /// (relative, such as <c>.claude/projects</c>) beneath <paramref name="home"/>: the agent's own HOME, whose
    /// contents it controls, so no component below it is followed through a link.
    /// </summary>
    public static RecoveredResult? TryRecover(string home, string projects, string cwd, string sessionId)
    {
        if (sessionId.Contains('/') || sessionId.Contains('\0') || sessionId.Contains(".."))
            return null;
        using var file = OwnFiles.OpenRead(home, Path.Combine(projects, Slug(cwd), sessionId + ".jsonl"), ClaudeCodeAdapter.MaxSessionBytes);
        if (file is null)
            return null;

        // One API message can span several lines (one content block each, same message id).
        var lines = new List<JsonElement>();
        try
        {
            // The answer is at the end: only the tail is read, so a hostile transcript costs at most that much memory.
            bool partialFirst = file.Length > TailBytes;
            if (partialFirst)
                file.Seek(-TailBytes, SeekOrigin.End);
            using var reader = new StreamReader(file, Encoding.UTF8);
            if (partialFirst)
                reader.ReadLine();
            while (reader.ReadLine() is { } line)
            {
                using var doc = Json.TryParseObject(line);
                if (doc is null)
                    continue;
                string? type = doc.RootElement.Str("type");
                if (type is "assistant" or "user")
                    lines.Add(doc.RootElement.Clone());
            }
        }
        catch (IOException)
        {
            return null;
        }

        if (lines.Count == 0 || lines[^1].Str("type") != "assistant")
            return null;
        var last = lines[^1].Get("message");
        if (last.Str("stop_reason") != "end_turn")
            return null;

        string? id = last.Str("id");
        var text = new StringBuilder();
        for (int i = lines.Count - 1; i >= 0 && lines[i].Str("type") == "assistant" && lines[i].Get("message").Str("id") == id; i--)
        {
            var blocks = lines[i].Get("message").Get("content").Items().Where(b => b.Str("type") == "text").Select(b => b.Str("text")).ToList();
            text.Insert(0, string.Concat(blocks));
            if (id is null)
                break;
        }

        return new RecoveredResult(text.ToString(), last.Get("usage").Node() as JsonObject);
    }
}
