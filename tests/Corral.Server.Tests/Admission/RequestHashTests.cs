using Corral.Server.Internal.Admission;

namespace Corral.Server.Tests.Admission;

public sealed class RequestHashTests
{
    [Theory]
    [InlineData("1", "1e0")]
    [InlineData("1.0", "1e0")]
    [InlineData("10e-1", "1e0")]
    [InlineData("0.1E1", "1e0")]
    [InlineData("100", "1e2")]
    [InlineData("-2.50", "-25e-1")]
    [InlineData("0", "0")]
    [InlineData("-0.0e5", "0")]
    [InlineData("12345678901234567890123", "12345678901234567890123e0")]
    public void Every_spelling_of_a_number_has_one_exact_form(string raw, string canonical) =>
        Assert.Equal(canonical, RequestHash.Number(raw));

    [Fact]
    public void Member_order_and_number_spelling_do_not_change_the_hash_at_any_depth()
    {
        string a = RequestHash.Of("""{"agent":"command","metadata":{"a":1,"b":{"x":[1.0,"y"],"w":2}},"env":{"P":"1","Q":"2"}}""");
        string b = RequestHash.Of("""{"env":{"Q":"2","P":"1"},"metadata":{"b":{"w":2e0,"x":[10e-1,"y"]},"a":1.00},"agent":"command"}""");
        Assert.Equal(a, b);
    }

    [Theory]
    [InlineData("""{"a":[1,2]}""", """{"a":[2,1]}""")] // an array's order is meaning
    [InlineData("""{"a":1}""", """{"a":"1"}""")]
    [InlineData("""{"a":1}""", """{"a":"1e0"}""")]
    [InlineData("""{"a":12345678901234567890123}""", """{"a":12345678901234567890124}""")] // equal as doubles
    [InlineData("""{"a":null}""", """{}""")]
    [InlineData("""{"a":0.1e-9223372036854775808}""", """{"a":1e9223372036854775807}""")] // exponents at the edge never wrap
    public void Different_requests_have_different_hashes(string one, string other) =>
        Assert.NotEqual(RequestHash.Of(one), RequestHash.Of(other));

    [Fact]
    public void A_row_stored_with_the_hash_of_its_text_still_matches_the_same_request()
    {
        string json = """{"agent":"command","metadata":{"b":1,"a":2}}""";
        string legacy = Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(json)));
        Assert.True(RequestHash.Matches(legacy, RequestHash.Of(json), json));
        Assert.True(RequestHash.Matches(RequestHash.Of(json), RequestHash.Of(json), json));
        Assert.False(RequestHash.Matches(legacy, RequestHash.Of("{}"), "{}"));
    }
}
