namespace Corral.Processes.Tests.Spawning;

public class BadInputTests
{
    private static ProcessSpawnException Fails(ProcessSpec spec) => Assert.Throws<ProcessSpawnException>(() => ProcessTree.Start(spec));

    [Fact]
    public void Missing_program_names_the_path()
    {
        var e = Fails(new ProcessSpec("/nonexistent/corral-nope"));
        Assert.Equal(SpawnFailure.FileNotFound, e.Failure);
        Assert.Equal("/nonexistent/corral-nope", e.Path);
        Assert.Contains("/nonexistent/corral-nope", e.Message);
    }

    [Fact]
    public void Missing_program_on_PATH()
    {
        var e = Fails(new ProcessSpec("corral-definitely-not-a-command"));
        Assert.Equal(SpawnFailure.FileNotFound, e.Failure);
        Assert.Contains("PATH", e.Message);
    }

    [Fact]
    public void Non_executable_file()
    {
        string file = Path.GetTempFileName();
        try
        {
            File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            var e = Fails(new ProcessSpec(file));
            Assert.Equal(SpawnFailure.NotExecutable, e.Failure);
            Assert.Equal(file, e.Path);
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public void Directory_is_not_a_program()
    {
        var e = Fails(new ProcessSpec("/tmp"));
        Assert.Equal(SpawnFailure.NotExecutable, e.Failure);
        Assert.Contains("directory", e.Message);
    }

    [Fact]
    public void Bad_working_directory()
    {
        var e = Fails(new ProcessSpec("/bin/true") { WorkingDirectory = "/nonexistent/dir" });
        Assert.Equal(SpawnFailure.BadWorkingDirectory, e.Failure);
        Assert.Equal("/nonexistent/dir", e.Path);
    }

    [Fact]
    public void Nul_in_an_argument()
    {
        var e = Fails(new ProcessSpec("/bin/echo", "ok", "bad\0arg"));
        Assert.Equal(SpawnFailure.InvalidArgument, e.Failure);
        Assert.Contains("argument 1", e.Message);
    }

    [Fact]
    public void Nul_or_equals_in_the_environment()
    {
        Assert.Equal(SpawnFailure.InvalidArgument, Fails(new ProcessSpec("/bin/true") { Environment = new Dictionary<string, string?> { ["A"] = "x\0y" } }).Failure);
        Assert.Equal(SpawnFailure.InvalidArgument, Fails(new ProcessSpec("/bin/true") { Environment = new Dictionary<string, string?> { ["A=B"] = "x" } }).Failure);
    }

    [Fact]
    public void Missing_input_file()
    {
        var e = Fails(new ProcessSpec("/bin/cat") { StandardInput = InputSource.FromFile("/nonexistent/input") });
        Assert.Equal(SpawnFailure.BadInputFile, e.Failure);
        Assert.Equal("/nonexistent/input", e.Path);
    }

    [Fact]
    public void Nothing_runs_and_nothing_leaks_when_validation_fails()
    {
        int before = Directory.GetFiles("/proc/self/fd").Length;
        for (int i = 0; i < 50; i++)
            Assert.Throws<ProcessSpawnException>(() => ProcessTree.Start(new ProcessSpec("/bin/cat") { StandardInput = InputSource.FromFile("/nonexistent/input") }, TestContext.Current.CancellationToken));
        Assert.InRange(Directory.GetFiles("/proc/self/fd").Length, 0, before + 5);
    }
}
