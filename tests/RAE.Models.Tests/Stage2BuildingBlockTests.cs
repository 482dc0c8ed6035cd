using RAE.Models.Nn;
using TorchSharp;
using static TorchSharp.torch;

namespace RAE.Models.Tests;

public sealed class Stage2BuildingBlockTests
{
    [Fact]
    public void LabelDropoutIsSeededForcibleAndOffInEvaluation()
    {
        using var scope = NewDisposeScope();
        using var guard = no_grad();
        using var embedder = new LabelEmbedder(numClasses: 10, hiddenSize: 4, dropoutProbability: 0.5);
        Assert.Equal(new long[] { 11, 4 }, embedder.Table.shape);
        var labels = arange(10, dtype: int64).repeat(40);
        var table = embedder.Table;

        var first = embedder.forward(labels, train: true, generator: new Generator(7, device("cpu")));
        var again = embedder.forward(labels, train: true, generator: new Generator(7, device("cpu")));
        Assert.True(first.equal(again).all().item<bool>());
        var dropped = first.eq(table[10]).all(1);
        var rate = dropped.to(float32).mean().item<float>();
        Assert.InRange(rate, 0.4f, 0.6f);
        // Every non-dropped row is the label's own row.
        var kept = first[dropped.logical_not()];
        var keptLabels = labels[dropped.logical_not()];
        Assert.True(kept.equal(table.index_select(0, keptLabels)).all().item<bool>());

        var evaluation = embedder.forward(labels, train: false);
        Assert.True(evaluation.equal(table.index_select(0, labels)).all().item<bool>());

        var force = tensor(new long[] { 1, 0, 1 });
        var forced = embedder.forward(tensor(new long[] { 3, 4, 5 }), train: false, forceDropIds: force);
        Assert.True(forced.equal(table.index_select(0, tensor(new long[] { 10, 4, 10 }))).all().item<bool>());

        using var withoutNull = new LabelEmbedder(numClasses: 10, hiddenSize: 4, dropoutProbability: 0);
        Assert.Equal(new long[] { 10, 4 }, withoutNull.Table.shape);
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => withoutNull.forward(tensor(new long[] { 10 }), train: false));
        Assert.Contains("label ids must lie in [0, 9]", error.Message);
    }

    [Fact]
    public void RmsNormComputesInFloat32AndCastsBack()
    {
        using var scope = NewDisposeScope();
        using var guard = no_grad();
        using var norm = new RMSNorm(8);
        norm.Weight.copy_(arange(1, 9, dtype: float32));
        var x = randn(3, 8) * 5;
        var expected = x / (x.pow(2).mean([-1], keepdim: true) + 1e-6).sqrt() * arange(1, 9, dtype: float32);
        Assert.True(Stage2TestSupport.MaxAbsDifference(norm.forward(x), expected) < 1e-5);
        norm.to(bfloat16);
        var half = norm.forward(x.to(bfloat16));
        Assert.Equal(ScalarType.BFloat16, half.dtype);
        Assert.True(Stage2TestSupport.MaxAbsDifference(half.to(float32), expected) < 0.1);
    }

    [Fact]
    public void RopeRotatesAdjacentPairsByRowThenColumnAngles()
    {
        using var scope = NewDisposeScope();
        var pairs = tensor(new float[] { 1, 2, 3, 4 }).reshape(1, 1, 1, 4);
        Assert.Equal(new float[] { -2, 1, -4, 3 }, VisionRotaryEmbeddingFast.RotateHalf(pairs).data<float>().ToArray());

        using var rope = new VisionRotaryEmbeddingFast(dim: 4, gridSide: 3);
        Assert.Equal(new long[] { 9, 8 }, rope.FreqsCos.shape);
        // Token (i=2, j=1) = index 7: angles [2·f0, 2·f0, 2·f1, 2·f1, 1·f0, 1·f0, 1·f1, 1·f1] with f = [1, 1/100].
        var expectedAngles = tensor(new float[] { 2, 2, 0.02f, 0.02f, 1, 1, 0.01f, 0.01f });
        Assert.True(Stage2TestSupport.MaxAbsDifference(rope.FreqsCos[7], expectedAngles.cos()) < 1e-6);
        Assert.True(Stage2TestSupport.MaxAbsDifference(rope.FreqsSin[7], expectedAngles.sin()) < 1e-6);

        // Rotation preserves the norm of every pair and depends on the position.
        var q = randn(2, 3, 9, 8);
        var rotated = rope.forward(q);
        Assert.True(Stage2TestSupport.MaxAbsDifference(q.reshape(2, 3, 9, 4, 2).norm(-1), rotated.reshape(2, 3, 9, 4, 2).norm(-1)) < 1e-5);
        Assert.True(Stage2TestSupport.MaxAbsDifference(q[.., .., 0], rotated[.., .., 0]) < 1e-6);
        Assert.True(Stage2TestSupport.MaxAbsDifference(q[.., .., 4], rotated[.., .., 4]) > 1e-2);
    }

    [Fact]
    public void RopeEqualsRotateHalfFormulaAndRotatesStackedQueriesAndKeysAlike()
    {
        using var scope = NewDisposeScope();
        using var rope = new VisionRotaryEmbeddingFast(dim: 8, gridSide: 4);
        var queries = randn(2, 3, 16, 16);
        var keys = randn(2, 3, 16, 16);
        var expected = queries * rope.FreqsCos + VisionRotaryEmbeddingFast.RotateHalf(queries) * rope.FreqsSin;
        Assert.True(Stage2TestSupport.MaxAbsDifference(rope.forward(queries), expected) < 1e-6);
        var together = rope.forward(stack([queries, keys]));
        Assert.True(Stage2TestSupport.MaxAbsDifference(together[0], rope.forward(queries)) == 0);
        Assert.True(Stage2TestSupport.MaxAbsDifference(together[1], rope.forward(keys)) == 0);
        // A head grid with twice the table's tokens repeats each table row twice.
        var doubled = randn(1, 2, 32, 16);
        var cos = rope.FreqsCos.repeat_interleave(2, dim: 0);
        var sin = rope.FreqsSin.repeat_interleave(2, dim: 0);
        var expectedDoubled = doubled * cos + VisionRotaryEmbeddingFast.RotateHalf(doubled) * sin;
        Assert.True(Stage2TestSupport.MaxAbsDifference(rope.forward(doubled), expectedDoubled) < 1e-6);
    }

    [Fact]
    public void SinCosTableEncodesColumnFirstThenRow()
    {
        using var scope = NewDisposeScope();
        var table = SinCosPositionEmbedding.Create2D(8, 3);
        Assert.Equal(ScalarType.Float32, table.dtype);
        // Token (i=1, j=2) = index 5; ω = [1, 1/100].
        var expected = tensor(new double[] { Math.Sin(2), Math.Sin(0.02), Math.Cos(2), Math.Cos(0.02), Math.Sin(1), Math.Sin(0.01), Math.Cos(1), Math.Cos(0.01) });
        Assert.True(Stage2TestSupport.MaxAbsDifference(table[5], expected.to(float32)) < 1e-7);
    }

    [Fact]
    public void PatchEmbedNamesTheExpectedInputShape()
    {
        using var embed = new PatchEmbed(imageSize: 4, patchSize: 2, inChannels: 3, embedDim: 5);
        using var input = zeros(1, 3, 8, 8);
        var error = Assert.Throws<ArgumentException>(() => embed.forward(input));
        Assert.Contains("[B, 3, 4, 4], got [1, 3, 8, 8]", error.Message);
    }
}
