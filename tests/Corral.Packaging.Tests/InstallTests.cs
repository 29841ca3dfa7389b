using System.IO.Compression;
using System.Text.Json;
using System.Xml.Linq;

namespace Corral.Packaging.Tests;

/// <summary>
/// What a user gets from the packages: <c>dotnet tool install Corral.Cli</c> from a folder gives a working
/// <c>corral</c> with the native spawn, and a project that restores Corral.Processes from it runs a contained tree.
/// </summary>
public sealed class InstallTests
{
    private static readonly string Version = typeof(InstallTests).Assembly.GetName().Version is { } v ? $"{v.Major}.{v.Minor}.{v.Build}" : "0.1.0";

    [Fact(Timeout = 120_000)]
    public async Task The_tool_installs_from_a_folder_and_runs_with_the_native_spawn()
    {
        using var dotnet = new Dotnet();
        await dotnet.PackAsync("Corral.Cli");
        string package = Path.Combine(dotnet.Feed, $"Corral.Cli.{Version}.nupkg");
        using (var zip = ZipFile.OpenRead(package))
        {
            Assert.Contains(zip.Entries, e => e.FullName == "tools/net10.0/any/libcorral_spawn.so");
            Assert.Contains(zip.Entries, e => e.FullName == "README.md");
        }

        string tools = Path.Combine(dotnet.Root, "tools");
        await dotnet.RequireAsync("dotnet", ["tool", "install", "--tool-path", tools, "--configfile", dotnet.NuGetConfig, "--add-source", dotnet.Feed, "--version", Version, "Corral.Cli"]);
        string corral = Path.Combine(tools, "corral");

        Assert.StartsWith(Version, (await dotnet.RequireAsync(corral, ["--version"])).Trim());
        Assert.Equal("hi\n", await dotnet.RequireAsync(corral, ["run", "--", "echo", "hi"]));

        // The report shows the tree was contained and nothing of it was left.
        var report = await dotnet.RunAsync(corral, ["run", "--report", "-", "--", "bash", "-c", "echo RESULT_LINE; setsid sleep 30 & exit 0"]);
        Assert.Equal(0, report.Outcome.ExitCode);
        Assert.Equal("RESULT_LINE\n", report.StandardOutput);
        using var json = JsonDocument.Parse(report.StandardError);
        // The background job: "sleep 30", or, when teardown comes before its exec on a busy machine, still its shell or setsid.
        Assert.Contains("sleep 30", Assert.Single(json.RootElement.GetProperty("killed").EnumerateArray()).GetProperty("command").GetString());

        // Only the native spawn can change user before exec (the posix_spawn fallback refuses --user): as root, it must work.
        if (Environment.UserName == "root")
            Assert.Equal("65534\n", await dotnet.RequireAsync(corral, ["run", "--user", "65534", "--", "id", "-u"]));
    }

    [Fact(Timeout = 120_000)]
    public async Task A_project_restores_Corral_Processes_from_a_folder_and_runs_a_contained_tree()
    {
        using var dotnet = new Dotnet();
        await dotnet.PackAsync("Corral.Processes", "Corral.Client");
        string package = Path.Combine(dotnet.Feed, $"Corral.Processes.{Version}.nupkg");
        using (var zip = ZipFile.OpenRead(package))
        {
            Assert.Contains(zip.Entries, e => e.FullName == "runtimes/linux-x64/native/libcorral_spawn.so");
            var nuspec = XDocument.Load(zip.Entries.Single(e => e.FullName.EndsWith(".nuspec")).Open());
            var metadata = nuspec.Root!.Elements().Single(e => e.Name.LocalName == "metadata");
            string Field(string name) => metadata.Elements().Single(e => e.Name.LocalName == name).Value;
            Assert.Equal("MIT", Field("license"));
            Assert.Equal("README.md", Field("readme"));
            Assert.StartsWith("https://github.com/", metadata.Elements().Single(e => e.Name.LocalName == "repository").Attribute("url")!.Value);
        }

        foreach (string id in new[] { "Corral.Processes", "Corral.Client" })
        {
            Assert.True(File.Exists(Path.Combine(dotnet.Feed, $"{id}.{Version}.snupkg")), $"no symbols package for {id}");
        }

        // The client is for any OS: it depends on none of Corral's Linux-only assemblies.
        using (var client = ZipFile.OpenRead(Path.Combine(dotnet.Feed, $"Corral.Client.{Version}.nupkg")))
        {
            Assert.Contains(client.Entries, e => e.FullName == "README.md");
            string nuspec = new StreamReader(client.Entries.Single(e => e.FullName.EndsWith(".nuspec")).Open()).ReadToEnd();
            Assert.Contains("Microsoft.Extensions.Http.Resilience", nuspec);
            Assert.DoesNotContain("Corral.Processes", nuspec);
        }

        string app = Path.Combine(dotnet.Root, "app");
        Directory.CreateDirectory(app);
        await File.WriteAllTextAsync(Path.Combine(app, "app.csproj"), $"""
            <Project Sdk="Microsoft.NET.Sdk">
              <PropertyGroup>
                <OutputType>Exe</OutputType>
                <TargetFramework>net10.0</TargetFramework>
                <ImplicitUsings>enable</ImplicitUsings>
                <Nullable>enable</Nullable>
              </PropertyGroup>
              <ItemGroup>
                <PackageReference Include="Corral.Processes" Version="{Version}" />
              </ItemGroup>
            </Project>
            """);
        // A root user checks the native spawn too: only it can run a tree as another user.
        await File.WriteAllTextAsync(Path.Combine(app, "Program.cs"), """
            using Corral.Processes;

            var result = await ProcessTree.RunAsync(new ProcessSpec("/bin/bash", "-c", "echo RESULT_LINE; setsid sleep 30 &"));
            Console.WriteLine($"{result.StandardOutput.Trim()} killed={result.Outcome.Killed.Count} containment={result.Outcome.Containment}");
            if (Environment.UserName == "root")
            {
                var other = await ProcessTree.RunAsync(new ProcessSpec("/usr/bin/id", "-u") { User = new ProcessUser(65534, 65534) });
                Console.WriteLine($"uid={other.StandardOutput.Trim()}");
            }
            """);
        string output = await dotnet.RequireAsync("dotnet", ["run", "--project", app, "-nodeReuse:false"], app);
        Assert.Contains("RESULT_LINE killed=1", output);
        Assert.True(File.Exists(Path.Combine(app, "bin", "Debug", "net10.0", "runtimes", "linux-x64", "native", "libcorral_spawn.so")));
        if (Environment.UserName == "root")
            Assert.Contains("uid=65534", output);
    }
}
