using Corral.Processes;

namespace Corral.Packaging.Tests;

/// <summary>The dotnet CLI (and the programs it installs) as contained trees with deadlines, in a sandbox of their own.</summary>
internal sealed class Dotnet : IDisposable
{
    public Dotnet()
    {
        Directory.CreateDirectory(Packages);
        Directory.CreateDirectory(Feed);
        // Only the local folder: a package of the same name and version elsewhere (nuget.org) must not be taken instead.
        // Every project under Root finds this file, and the tool install is given it.
        File.WriteAllText(NuGetConfig, $"""
            <?xml version="1.0" encoding="utf-8"?>
            <configuration>
              <packageSources>
                <clear />
                <add key="local" value="{Feed}" />
              </packageSources>
            </configuration>
            """);
    }

    public string NuGetConfig => Path.Combine(Root, "nuget.config");

    /// <summary>Everything of one test: the feed, the packages cache, the tool path, the console project.</summary>
    public string Root { get; } = Directory.CreateTempSubdirectory("corral-packaging-").FullName;

    /// <summary>The local folder the packages are packed to.</summary>
    public string Feed => Path.Combine(Root, "feed");

    /// <summary>A packages cache of its own, so no package from an earlier run or from the machine's cache is used.</summary>
    public string Packages => Path.Combine(Root, "packages");

    /// <summary>The configuration these tests were built in: the one whose build outputs are packed.</summary>
    public static string Configuration => new DirectoryInfo(AppContext.BaseDirectory.TrimEnd('/')).Parent!.Name;

    public static string Project(string name) => Path.Combine(CorralServerProcess.RepoRoot(), "src", name, name + ".csproj");

    /// <summary>Packs the projects' existing build outputs into <see cref="Feed"/>.</summary>
    public async Task PackAsync(params string[] projects)
    {
        foreach (string project in projects)
            await RequireAsync("dotnet", ["pack", Project(project), "--no-build", "-c", Configuration, "-o", Feed, "-nodeReuse:false", "-v", "q"]);
    }

    public async Task<ProcessResult> RunAsync(string file, IReadOnlyList<string> arguments, string? workingDirectory = null)
    {
        var spec = new ProcessSpec(file, arguments)
        {
            WorkingDirectory = workingDirectory ?? Root,
            Timeout = TimeSpan.FromSeconds(100),
            Environment = new Dictionary<string, string?>
            {
                ["NUGET_PACKAGES"] = Packages,
                ["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1",
                ["DOTNET_NOLOGO"] = "1",
                ["DOTNET_SKIP_FIRST_TIME_EXPERIENCE"] = "1",
                ["MSBUILDDISABLENODEREUSE"] = "1",
                ["UseSharedCompilation"] = "false",
            },
            Teardown = new TeardownOptions { Grace = TimeSpan.FromSeconds(2) },
        };
        return await ProcessTree.RunAsync(spec, TestContext.Current.CancellationToken);
    }

    /// <summary>Runs, and fails the test with the command's output unless it exits 0; returns its stdout.</summary>
    public async Task<string> RequireAsync(string file, IReadOnlyList<string> arguments, string? workingDirectory = null)
    {
        var result = await RunAsync(file, arguments, workingDirectory);
        Assert.True(result.Outcome.ExitCode == 0,
            $"'{file} {string.Join(' ', arguments)}' ended {result.Outcome.Reason} with status {result.Outcome.ShellExitCode}:\n{result.StandardOutput}\n{result.StandardError}");
        return result.StandardOutput;
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(Root, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
