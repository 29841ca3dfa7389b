using Corral.Server.Hosting;
using Microsoft.Extensions.Hosting;

namespace Corral.Server.Tests.Security;

/// <summary>The guard checks what was really bound, whatever configured it: a public address without a token stops the server.</summary>
public sealed class BindGuardTests
{
    [Theory(Timeout = 120_000)]
    [InlineData("--Kestrel:Endpoints:e1:Url=http://0.0.0.0:0")]
    [InlineData("--Kestrel:Endpoints:public:Url=http://[::]:0")]
    public async Task A_public_kestrel_endpoint_from_configuration_without_a_token_exits_2(string endpoint)
    {
        string data = Directory.CreateTempSubdirectory("corral-bind-").FullName;
        try
        {
            var stderr = new StringWriter();
            var original = Console.Error;
            int code;
            Console.SetError(stderr);
            try
            {
                code = await CorralServer.RunAsync(new ServerOptions { Urls = "http://127.0.0.1:0", DataDirectory = data }, [endpoint],
                    TestContext.Current.CancellationToken).WaitAsync(TimeSpan.FromSeconds(60), TestContext.Current.CancellationToken);
            }
            finally
            {
                Console.SetError(original);
            }

            Assert.Equal(2, code);
            Assert.Contains("without a token", stderr.ToString());
        }
        finally
        {
            Directory.Delete(data, true);
        }
    }

    [Fact(Timeout = 120_000)]
    public async Task An_appsettings_kestrel_section_is_checked_the_same_way()
    {
        string data = Directory.CreateTempSubdirectory("corral-bind-").FullName;
        string settings = Path.Combine(data, "appsettings.json");
        File.WriteAllText(settings, """{"Kestrel":{"Endpoints":{"all":{"Url":"http://0.0.0.0:0"}}}}""");
        var app = CorralServer.Build(new ServerOptions { Urls = "http://127.0.0.1:0", DataDirectory = Path.Combine(data, "d") }, ["--contentRoot", data]);
        try
        {
            await app.StartAsync(TestContext.Current.CancellationToken);
            using var http = new HttpClient();
            string address = CorralServer.Addresses(app).Single().Replace("0.0.0.0", "127.0.0.1");
            using var response = await http.GetAsync(address + "/v1/tasks", TestContext.Current.CancellationToken);
            Assert.Equal(System.Net.HttpStatusCode.ServiceUnavailable, response.StatusCode); // not one task request is served
            await app.WaitForShutdownAsync(TestContext.Current.CancellationToken).WaitAsync(TimeSpan.FromSeconds(30), TestContext.Current.CancellationToken);
        }
        finally
        {
            await app.DisposeAsync();
            Directory.Delete(data, true);
        }
    }

    [Fact(Timeout = 120_000)]
    public async Task With_a_token_a_public_endpoint_is_served()
    {
        string data = Directory.CreateTempSubdirectory("corral-bind-").FullName;
        var app = CorralServer.Build(new ServerOptions { Urls = "http://127.0.0.1:0", DataDirectory = data, Token = "t0ken-value" },
            ["--Kestrel:Endpoints:e1:Url=http://0.0.0.0:0"]);
        try
        {
            await app.StartAsync(TestContext.Current.CancellationToken);
            using var http = new HttpClient();
            string address = CorralServer.Addresses(app).Single().Replace("0.0.0.0", "127.0.0.1");
            using var response = await http.GetAsync(address + "/healthz", TestContext.Current.CancellationToken);
            Assert.Equal(System.Net.HttpStatusCode.OK, response.StatusCode);
        }
        finally
        {
            await app.StopAsync(TestContext.Current.CancellationToken);
            await app.DisposeAsync();
            Directory.Delete(data, true);
        }
    }
}
