using Microsoft.Extensions.DependencyInjection;
using Orleans.Serialization;
using RAE.GrainInterfaces;

namespace RAE.Cluster.Tests;

[Collection(ClusterCollection.Name)]
public sealed class FloatChunkTests(ClusterFixture fixture)
{
    private Serializer Serializer => fixture.Cluster.ServiceProvider.GetRequiredService<Serializer>();

    [Fact]
    public void AViewTravelsAsItsSliceOnlyAndArrivesAsAnOwnedChunkThatReleasesOnce()
    {
        float[] vector = [1f, -2.5f, 3e-7f, 4e8f, -0f, 6f];
        var view = FloatChunk.View(vector, offset: 2, count: 3);

        var bytes = Serializer.SerializeToArray(view);
        var received = Serializer.Deserialize<FloatChunk>(bytes)!;

        Assert.False(view.IsOwned);
        Assert.True(received.IsOwned);
        Assert.Equal(vector[2..5], received.Values.ToArray());
        Assert.Equal(vector[2..5], view.Values.ToArray()); // serializing a view leaves the sender's vector alone
        Assert.Throws<InvalidOperationException>(() => view.WritableValues.Fill(0));
        received.Release();
        Assert.Throws<ObjectDisposedException>(() => received.Values.ToArray());
        Assert.Throws<InvalidOperationException>(received.Release);
    }

    [Fact]
    public void SerializingASharedChunkCountsAsOneHoldersRelease()
    {
        var shared = FloatChunk.Rent(4, holders: 2);
        shared.WritableValues.Fill(2.5f);

        var copy = Serializer.Deserialize<FloatChunk>(Serializer.SerializeToArray(shared))!;

        Assert.Equal([2.5f, 2.5f, 2.5f, 2.5f], shared.Values.ToArray()); // the other holder still reads it
        shared.Release();
        Assert.Throws<ObjectDisposedException>(() => shared.Values.ToArray());
        Assert.Equal([2.5f, 2.5f, 2.5f, 2.5f], copy.Values.ToArray());
        copy.Release();
    }
}
