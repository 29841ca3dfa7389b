using Corral.Processes.Tests.Support;

namespace Corral.Processes.Tests.Spawning;

/// <summary>A tree of a uid exclusive to it finds nothing an earlier tree of that uid left in the uid's keyrings.</summary>
public sealed class KeyringTests
{
    // add_key(2) and keyctl(2) through perl (in every Debian-like base system): x86-64 numbers.
    private const string Add = "my ($t,$d,$p)=('user','corral-canary','LEFT-BY-AN-EARLIER-TREE'); print syscall(248, $t, $d, $p, length $p, -4) > 0 ? \"added\\n\" : \"add failed: $!\\n\"";
    private const string Search = "my ($t,$d)=('user','corral-canary'); print syscall(250, 10, -4, $t, $d, 0) > 0 ? \"found\\n\" : \"none\\n\"";

    private static async Task<string> PerlAsync(string script, ProcessUser user)
    {
        var result = await ProcessTree.RunAsync(new ProcessSpec("/usr/bin/perl", ["-e", script]) { User = user }, TestContext.Current.CancellationToken);
        Assert.Equal(0, result.Outcome.ExitCode);
        return result.StandardOutput.Trim();
    }

    [Fact(Timeout = 60_000)]
    public async Task A_key_an_earlier_tree_of_the_uid_added_to_its_user_keyring_is_gone_for_a_tree_the_uid_is_exclusive_to()
    {
        Modes.SkipUnlessUsersCanBeSwitched();
        Assert.SkipUnless(System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture == System.Runtime.InteropServices.Architecture.X64 && File.Exists("/usr/bin/perl"),
            "the probe calls add_key(2) through perl with x86-64 syscall numbers");
        int uid = Proc.UnusedUid();
        var shared = new ProcessUser(uid, uid);
        Assert.Equal("added", await PerlAsync(Add, shared));
        Assert.Equal("found", await PerlAsync(Search, shared)); // the kernel keeps it after the uid's last process

        Assert.Equal("none", await PerlAsync(Search, shared with { Exclusive = true }));
        Assert.Equal("none", await PerlAsync(Search, shared)); // emptied, not hidden
    }
}
