using System.Runtime.InteropServices;
using Corral.Server.Internal.Storage;

namespace Corral.Server.Tests.Storage;

/// <summary>Directories made under a tree that tasks can write in: never through a symbolic link.</summary>
public sealed partial class FilesTests : IDisposable
{
    private readonly string _scratch = Directory.CreateTempSubdirectory("corral-files-").FullName;

    public void Dispose() => Directory.Delete(_scratch, recursive: true);

    [Fact(Timeout = 60_000)]
    public void Every_directory_on_the_path_gets_the_mode_and_group_also_one_that_existed()
    {
        string root = Directory.CreateDirectory(Path.Combine(_scratch, "root")).FullName;
        string existing = Directory.CreateDirectory(Path.Combine(root, "a")).FullName;
        File.SetUnixFileMode(existing, Files.PrivateDirectory); // as a task that made the name first and closed it
        File.WriteAllText(Path.Combine(existing, "inside"), "x");

        Files.CreateBeneath(root, "a/b/./c", 0, Files.SharedDirectory);

        Assert.Equal(Files.SharedDirectory, File.GetUnixFileMode(existing));
        Assert.True(File.Exists(Path.Combine(existing, "inside"))); // its contents are the workspace's
        Assert.Equal(Files.SharedDirectory, File.GetUnixFileMode(Path.Combine(root, "a", "b")));
        Assert.Equal(Files.SharedDirectory, File.GetUnixFileMode(Path.Combine(root, "a", "b", "c")));
        Assert.Throws<IOException>(() => Files.CreateBeneath(root, "a/../../out", 0, Files.SharedDirectory));
        Assert.False(Directory.Exists(Path.Combine(_scratch, "out")));
    }

    [Fact(Timeout = 60_000)]
    public void A_symbolic_link_in_the_path_is_refused_and_nothing_is_made_where_it_points()
    {
        string root = Directory.CreateDirectory(Path.Combine(_scratch, "root")).FullName;
        string outside = Directory.CreateDirectory(Path.Combine(_scratch, "outside")).FullName;
        Directory.CreateDirectory(Path.Combine(root, "p"));
        File.CreateSymbolicLink(Path.Combine(root, "p", "lnk"), outside);

        Assert.Throws<IOException>(() => Files.CreateBeneath(root, "p/lnk/k", 0, Files.SharedDirectory));
        Assert.Throws<IOException>(() => Files.CreateBeneath(root, "p/lnk", 0, Files.SharedDirectory));
        Assert.Empty(Directory.EnumerateFileSystemEntries(outside));
    }

    [Fact(Timeout = 60_000)]
    public async Task A_directory_swapped_for_a_link_while_paths_are_made_never_lets_one_land_outside()
    {
        // What a hostile task can do in a shared workspace: exchange a directory and a link to elsewhere, over and over,
        // while the server (root) makes a workdir through that name.
        string root = Directory.CreateDirectory(Path.Combine(_scratch, "root")).FullName;
        string outside = Directory.CreateDirectory(Path.Combine(_scratch, "outside")).FullName;
        string race = Directory.CreateDirectory(Path.Combine(root, "race")).FullName;
        string link = Path.Combine(root, "lnk");
        File.CreateSymbolicLink(link, outside);

        using var stop = new CancellationTokenSource();
        long swaps = 0;
        var swapper = Task.Factory.StartNew(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                if (renameat2(AtFdCwd, race, AtFdCwd, link, RenameExchange) != 0)
                    throw new IOException($"renameat2 failed: errno {Marshal.GetLastPInvokeError()}");
                swaps++;
            }
        }, TaskCreationOptions.LongRunning);

        int made = 0, refused = 0;
        var until = DateTime.UtcNow + TimeSpan.FromSeconds(2);
        for (int i = 0; DateTime.UtcNow < until; i++)
        {
            try
            {
                Files.CreateBeneath(root, $"race/k{i}", 0, Files.SharedDirectory);
                made++;
            }
            catch (IOException)
            {
                refused++;
            }
        }

        stop.Cancel();
        await swapper.WaitAsync(TestContext.Current.CancellationToken);
        Assert.True(swaps > 100, $"the swapper ran ({swaps} swaps)");
        Assert.Empty(Directory.EnumerateFileSystemEntries(outside));
        Assert.True(made > 0 && refused > 0, $"both outcomes seen: {made} made, {refused} refused");
    }

    private const int AtFdCwd = -100;
    private const uint RenameExchange = 2;

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int renameat2(int olddirfd, string oldpath, int newdirfd, string newpath, uint flags);
}
