using System.Buffers;
using System.Text;
using System.Text.Json;
using Corral.Server.Internal.Streaming;

namespace Corral.Server.Tests.Streaming;

/// <summary>Bytes of any encoding as JSON text, piece by piece.</summary>
public sealed class JsonTextTests
{
    private static (string Json, bool Valid) Escape(byte[] bytes)
    {
        var to = new ArrayBufferWriter<byte>();
        to.Write("\""u8);
        bool valid = JsonText.WriteEscaped(to, bytes);
        to.Write("\""u8);
        return (Encoding.UTF8.GetString(to.WrittenSpan), valid);
    }

    [Fact]
    public void Valid_utf8_is_kept_and_quotes_backslashes_and_control_characters_are_escaped()
    {
        string text = "héllo \"w\\orld\"\t\u0001 ✓ 🐂";
        var (json, valid) = Escape(Encoding.UTF8.GetBytes(text));
        Assert.True(valid);
        Assert.Equal(text, JsonSerializer.Deserialize<string>(json));
        Assert.Contains("✓", json); // not \u2713: the output stays readable
    }

    [Fact]
    public void Invalid_sequences_become_replacement_characters_and_are_reported()
    {
        var (json, valid) = Escape([(byte)'A', 0xFF, (byte)'B', 0xE2, 0x9C]);
        Assert.False(valid);
        // One U+FFFD per maximal invalid subsequence, as Encoding.UTF8 decodes it.
        Assert.Equal("A\uFFFDB\uFFFD", JsonSerializer.Deserialize<string>(json));
        Assert.Equal(Encoding.UTF8.GetString([(byte)'A', 0xFF, (byte)'B', 0xE2, 0x9C]), JsonSerializer.Deserialize<string>(json));
    }

    [Theory]
    [InlineData(new byte[] { (byte)'a', 0xE2, 0x9C }, 1)]       // a 3-byte character cut after 2 bytes
    [InlineData(new byte[] { (byte)'a', 0xF0 }, 1)]             // a 4-byte lead alone
    [InlineData(new byte[] { (byte)'a', 0xE2, 0x9C, 0x93 }, 4)] // whole
    [InlineData(new byte[] { (byte)'a', (byte)'b' }, 2)]
    public void A_piece_ends_before_an_incomplete_character(byte[] piece, int prefix) =>
        Assert.Equal(prefix, JsonText.CompletePrefix(piece));

    [Fact]
    public void Base64_of_pieces_that_are_multiples_of_three_joins_up()
    {
        byte[] bytes = Enumerable.Range(0, 100).Select(i => (byte)(i * 7)).ToArray();
        var to = new ArrayBufferWriter<byte>();
        JsonText.WriteBase64(to, bytes.AsSpan(0, 48));
        JsonText.WriteBase64(to, bytes.AsSpan(48));
        Assert.Equal(Convert.ToBase64String(bytes), Encoding.ASCII.GetString(to.WrittenSpan));
    }
}
