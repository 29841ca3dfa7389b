using YamlDotNet.RepresentationModel;

namespace Corral.Deploy.Tests;

/// <summary>The kustomize manifests describe a fleet an operator can trust: probes, secrets, a budget, a graceful stop.</summary>
public sealed class KubernetesTests
{
    [Fact(Timeout = 60_000)]
    public async Task The_manifests_run_a_fleet_with_probes_secrets_a_disruption_budget_and_a_stop_longer_than_the_ladder()
    {
        var kustomization = Load("kustomization.yaml").Single();
        var files = ((YamlSequenceNode)kustomization["resources"]).Select(n => ((YamlScalarNode)n).Value!).ToList();
        var documents = files.SelectMany(Load).ToList();
        YamlMappingNode Kind(string kind) => Assert.Single(documents, d => Scalar(d, "kind") == kind);

        var deployment = Kind("Deployment");
        Assert.True(int.Parse(Scalar(deployment, "spec", "replicas")!) >= 2, "a fleet has more than one node");
        var pod = Map(deployment, "spec", "template", "spec");
        Assert.True(double.Parse(Scalar(pod, "terminationGracePeriodSeconds")!) > 2 * Repository.LadderSeconds,
            $"the grace period must outlast the stop ladder ({Repository.LadderSeconds} s) with room for the last writes");
        var container = (YamlMappingNode)((YamlSequenceNode)pod["containers"]).Single();
        Assert.Equal("/readyz", Scalar(container, "readinessProbe", "httpGet", "path"));
        Assert.Equal("/healthz", Scalar(container, "livenessProbe", "httpGet", "path"));
        var env = ((YamlSequenceNode)container["env"]).Cast<YamlMappingNode>().ToDictionary(e => Scalar(e, "name")!);
        Assert.Equal("corral", Scalar(env["CORRAL_TOKEN"], "valueFrom", "secretKeyRef", "name"));
        Assert.Equal("corral", Scalar(env["Corral__Postgres__ConnectionString"], "valueFrom", "secretKeyRef", "name"));
        Assert.Equal("metadata.name", Scalar(env["Corral__Fleet__NodeId"], "valueFrom", "fieldRef", "fieldPath"));
        Assert.Equal("true", Scalar(pod, "securityContext", "runAsNonRoot"));
        Assert.Equal("false", Scalar(container, "securityContext", "allowPrivilegeEscalation"));

        var secret = Kind("Secret");
        Assert.Equal(["postgres", "token"], Map(secret, "stringData").Children.Keys.Select(k => ((YamlScalarNode)k).Value).Order());
        var budget = Kind("PodDisruptionBudget");
        Assert.Equal("1", Scalar(budget, "spec", "maxUnavailable"));
        Assert.Equal("corral", Scalar(budget, "spec", "selector", "matchLabels", "app.kubernetes.io/name"));
        var service = Kind("Service");
        Assert.Equal("http", Scalar((YamlMappingNode)((YamlSequenceNode)Map(service, "spec")["ports"]).Single(), "targetPort"));

        // Where kubectl is installed, kustomize renders the whole set as it will be applied.
        if (Repository.OnPath("kubectl"))
        {
            var (code, rendered, error) = await Repository.RunAsync("kubectl", ["kustomize", Repository.Deploy("kubernetes")], TimeSpan.FromSeconds(30));
            Assert.True(code == 0, error);
            Assert.Contains("namespace: corral", rendered);
            Assert.Equal(files.Count, rendered.Split('\n').Count(l => l.StartsWith("kind: ")));
        }
    }

    private static List<YamlMappingNode> Load(string file)
    {
        var stream = new YamlStream();
        using var reader = new StreamReader(Repository.Deploy("kubernetes", file));
        stream.Load(reader);
        return [.. stream.Documents.Select(d => (YamlMappingNode)d.RootNode)];
    }

    private static YamlMappingNode Map(YamlMappingNode node, params string[] path) =>
        path.Aggregate(node, (n, key) => (YamlMappingNode)n[key]);

    private static string? Scalar(YamlMappingNode node, params string[] path) =>
        ((YamlScalarNode)Map(node, path[..^1])[path[^1]]).Value;
}
