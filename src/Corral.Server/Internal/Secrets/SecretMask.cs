using System.Buffers;
using System.Text;
using System.Text.Json;

namespace Corral.Server.Internal.Secrets;

/// <summary>
/// The secret values of one task, compiled into one automaton (Aho–Corasick over bytes) that replaces every
/// occurrence of any of them with <c>[secret:NAME]</c> in a single pass: linear in the text whatever the number of
/// secrets, and a stream is masked piece by piece (<see cref="Start"/>) even when a value is split across two reads.
/// Each value is matched as written and as the API's JSON writes it, so records and events are masked too.
/// </summary>
internal sealed class SecretMask
{
    /// <summary>Shorter values are refused: masking them would mangle ordinary text.</summary>
    public const int MinLength = 4;

    private readonly int[] _delta;        // state × 256 → state
    private readonly int[] _depth;        // how many bytes of a value the state has matched
    private readonly int[] _matchLength;  // the longest value ending in this state (0: none)
    private readonly int[] _matchName;    // whose
    private readonly byte[][] _placeholders;

    private SecretMask(int[] delta, int[] depth, int[] matchLength, int[] matchName, byte[][] placeholders)
    {
        _delta = delta;
        _depth = depth;
        _matchLength = matchLength;
        _matchName = matchName;
        _placeholders = placeholders;
    }

    /// <summary>The names of the masked values.</summary>
    public IReadOnlyList<string> Names { get; private init; } = [];

    /// <summary>The mask for these secrets; <c>null</c> when there are none.</summary>
    public static SecretMask? Create(IReadOnlyList<KeyValuePair<string, string>> secrets)
    {
        var patterns = new List<(byte[] Bytes, int Name)>();
        var names = new List<string>();
        foreach (var (name, value) in secrets)
        {
            if (value.Length < MinLength)
                continue;
            int index = names.Count;
            names.Add(name);
            var forms = new HashSet<string>(StringComparer.Ordinal) { value };
            string json = JsonSerializer.Serialize(value, ApiJson.Options);
            forms.Add(json[1..^1]);
            string relaxed = JsonSerializer.Serialize(value, new JsonSerializerOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
            forms.Add(relaxed[1..^1]);
            foreach (string form in forms)
                patterns.Add((Encoding.UTF8.GetBytes(form), index));
        }

        if (patterns.Count == 0)
            return null;

        // The trie.
        var children = new List<Dictionary<byte, int>> { new() };
        var depth = new List<int> { 0 };
        var matchLength = new List<int> { 0 };
        var matchName = new List<int> { -1 };
        foreach (var (bytes, name) in patterns)
        {
            int state = 0;
            foreach (byte b in bytes)
            {
                if (!children[state].TryGetValue(b, out int next))
                {
                    next = children.Count;
                    children.Add([]);
                    depth.Add(depth[state] + 1);
                    matchLength.Add(0);
                    matchName.Add(-1);
                    children[state][b] = next;
                }

                state = next;
            }

            if (bytes.Length > matchLength[state])
            {
                matchLength[state] = bytes.Length;
                matchName[state] = name;
            }
        }

        // Breadth first: failure links, the longest match through them, and the full transition table.
        int count = children.Count;
        var delta = new int[count * 256];
        var fail = new int[count];
        var queue = new Queue<int>();
        for (int b = 0; b < 256; b++)
        {
            if (children[0].TryGetValue((byte)b, out int next))
            {
                delta[b] = next;
                fail[next] = 0;
                queue.Enqueue(next);
            }
        }

        while (queue.Count > 0)
        {
            int state = queue.Dequeue();
            if (matchLength[fail[state]] > matchLength[state])
            {
                matchLength[state] = matchLength[fail[state]];
                matchName[state] = matchName[fail[state]];
            }

            for (int b = 0; b < 256; b++)
            {
                if (children[state].TryGetValue((byte)b, out int next))
                {
                    fail[next] = delta[fail[state] * 256 + b];
                    delta[state * 256 + b] = next;
                    queue.Enqueue(next);
                }
                else
                {
                    delta[state * 256 + b] = delta[fail[state] * 256 + b];
                }
            }
        }

        return new SecretMask(delta, [.. depth], [.. matchLength], [.. matchName], names.Select(n => Encoding.UTF8.GetBytes($"[secret:{n}]")).ToArray())
        {
            Names = names,
        };
    }

    /// <summary>A masking pass over one stream of bytes.</summary>
    public Pass Start() => new(this);

    /// <summary>Masks a whole text at once.</summary>
    public byte[] Apply(ReadOnlySpan<byte> text)
    {
        var output = new ArrayBufferWriter<byte>(text.Length);
        var pass = Start();
        pass.Write(text, output);
        pass.Flush(output);
        return output.WrittenSpan.ToArray();
    }

    public string Apply(string text) => Encoding.UTF8.GetString(Apply(Encoding.UTF8.GetBytes(text)));

    /// <summary>
    /// One stream through the mask. Bytes that may still be the start of a value are held back until they cannot be
    /// (at most the longest value, less one byte); every byte a match covers is replaced, overlapping matches as one.
    /// </summary>
    internal sealed class Pass(SecretMask mask)
    {
        private readonly ArrayBufferWriter<byte> _held = new();
        private readonly List<(long Start, long End, int Name)> _covers = [];
        private long _heldStart;
        private int _state;

        public void Write(ReadOnlySpan<byte> input, IBufferWriter<byte> output)
        {
            long position = _heldStart + _held.WrittenCount;
            int state = _state;
            var delta = mask._delta;
            for (int i = 0; i < input.Length; i++)
            {
                state = delta[state * 256 + input[i]];
                int length = mask._matchLength[state];
                if (length > 0)
                    Cover(position + i - length + 1, position + i, mask._matchName[state]);
            }

            _state = state;
            _held.Write(input);
            // Nothing before here can begin a match any more.
            long safe = position + input.Length - mask._depth[state];
            Emit(safe, output);
        }

        public void Flush(IBufferWriter<byte> output)
        {
            Emit(_heldStart + _held.WrittenCount, output);
            _state = 0;
        }

        private void Cover(long start, long end, int name)
        {
            if (_covers.Count > 0 && start <= _covers[^1].End + 1)
                _covers[^1] = (Math.Min(_covers[^1].Start, start), Math.Max(_covers[^1].End, end), _covers[^1].Name);
            else
                _covers.Add((start, end, name));
        }

        private void Emit(long safe, IBufferWriter<byte> output)
        {
            var held = _held.WrittenSpan;
            long at = _heldStart;
            int done = 0;
            while (done < _covers.Count && _covers[done].End < safe)
            {
                var (start, end, name) = _covers[done];
                output.Write(held[(int)(at - _heldStart)..(int)(start - _heldStart)]);
                output.Write(mask._placeholders[name]);
                at = end + 1;
                done++;
            }

            _covers.RemoveRange(0, done);
            long until = _covers.Count > 0 ? Math.Min(safe, _covers[0].Start) : safe;
            if (until > at)
            {
                output.Write(held[(int)(at - _heldStart)..(int)(until - _heldStart)]);
                at = until;
            }

            // Keep what is not out yet.
            int consumed = (int)(at - _heldStart);
            if (consumed > 0)
            {
                byte[] rest = held[consumed..].ToArray();
                _held.Clear();
                _held.Write(rest);
                _heldStart = at;
            }
        }
    }
}
