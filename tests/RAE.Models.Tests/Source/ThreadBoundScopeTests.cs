using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace RAE.Models.Tests.Source;

/// <summary>
/// A scope that lives on the current thread (TorchSharp's dispose scope, grad mode, <c>Autocast</c>) must end before
/// the next <c>await</c>: after one, the method resumes on another thread and the scope stays behind on the first, where
/// it collects the tensors of whatever runs there next and frees them when its owner ends it, possibly while they are in
/// use (a test helper did this). This test reads every C# file of the repository and names each scope that an await
/// follows inside it.
/// </summary>
public sealed class ThreadBoundScopeTests
{
    private static readonly string[] ThreadBoundScopeCalls = ["NewDisposeScope", "no_grad", "enable_grad", "inference_mode", "set_grad_enabled"];

    [Fact]
    public void NoThreadBoundScopeSpansAnAwaitInTheRepository()
    {
        var root = TestRepository.Root;
        var files = Directory.EnumerateFiles(root, "*.cs", SearchOption.AllDirectories)
            .Where(path => !path.Split(Path.DirectorySeparatorChar).Any(part => part is "bin" or "obj" or ".git" or "node_modules"))
            .ToList();
        Assert.True(files.Count > 100, $"found only {files.Count} C# files under {root}");
        var violations = files.SelectMany(path => Violations(File.ReadAllText(path), Path.GetRelativePath(root, path))).ToList();
        Assert.True(violations.Count == 0, "thread-bound scopes that span an await:\n" + string.Join("\n", violations));
    }

    [Theory]
    [InlineData("async Task M() { using var scope = NewDisposeScope(); await Task.Yield(); }", 1)]
    [InlineData("async Task M() { using (var scope = torch.NewDisposeScope()) { await Task.Yield(); } }", 1)]
    [InlineData("async Task M() { using var grad = no_grad(); foreach (var x in xs) { await x; } }", 1)]
    [InlineData("async Task M() { using var autocast = Autocast.Enter(p); await foreach (var x in xs) { } }", 1)]
    [InlineData("async Task M() { using (var scope = NewDisposeScope()) { Work(); } await Task.Yield(); }", 0)]
    [InlineData("async Task M() { await Task.Yield(); using var scope = NewDisposeScope(); Work(); }", 0)]
    [InlineData("async Task M() { using var scope = NewDisposeScope(); var run = async () => await Task.Yield(); }", 0)]
    [InlineData("async Task M() { using var stream = File.OpenRead(p); await stream.FlushAsync(); }", 0)]
    public void TheCheckFindsAScopeThatAnAwaitFollows(string method, int expected) =>
        Assert.Equal(expected, Violations($"class C {{ {method} }}", "sample.cs").Count());

    private static IEnumerable<string> Violations(string source, string path)
    {
        var tree = CSharpSyntaxTree.ParseText(source, path: path);
        foreach (var node in tree.GetRoot().DescendantNodes())
        {
            SyntaxNode? span = node switch
            {
                // `using var x = ...;` lives to the end of its block: the statements after it are inside the scope.
                LocalDeclarationStatementSyntax { UsingKeyword.RawKind: (int)SyntaxKind.UsingKeyword } declaration when OpensScope(declaration.Declaration)
                    => declaration.Parent is BlockSyntax block ? block : null,
                UsingStatementSyntax statement when OpensScope((SyntaxNode?)statement.Declaration ?? statement.Expression) => statement.Statement,
                _ => null,
            };
            if (span is null) continue;
            // A declaration's scope covers what follows it in the block; a using statement's, its body.
            var start = node is UsingStatementSyntax ? span.SpanStart : node.Span.End;
            var awaited = AwaitsOutsideNestedFunctions(span).FirstOrDefault(position => position >= start);
            if (awaited == 0) continue;
            var line = tree.GetLineSpan(node.Span).StartLinePosition.Line + 1;
            var awaitLine = tree.GetLineSpan(new Microsoft.CodeAnalysis.Text.TextSpan(awaited, 0)).StartLinePosition.Line + 1;
            yield return $"{path}:{line}: scope opened here is still open at the await on line {awaitLine}";
        }
    }

    private static bool OpensScope(SyntaxNode? node) =>
        node is not null && node.DescendantNodesAndSelf().OfType<InvocationExpressionSyntax>().Any(call => call.Expression switch
        {
            IdentifierNameSyntax name => ThreadBoundScopeCalls.Contains(name.Identifier.Text),
            MemberAccessExpressionSyntax member => ThreadBoundScopeCalls.Contains(member.Name.Identifier.Text)
                || member.ToString().EndsWith("Autocast.Enter", StringComparison.Ordinal),
            _ => false,
        });

    /// <summary>Positions of the awaits that run in this method's own body (a lambda's or local function's run in another).</summary>
    private static IEnumerable<int> AwaitsOutsideNestedFunctions(SyntaxNode span) =>
        span.DescendantNodesAndTokens(child => child is not (AnonymousFunctionExpressionSyntax or LocalFunctionStatementSyntax))
            .Where(item => item.IsKind(SyntaxKind.AwaitKeyword))
            .Select(item => item.SpanStart);
}
