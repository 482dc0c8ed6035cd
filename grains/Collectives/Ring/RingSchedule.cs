namespace RAE.Grains.Collectives.Ring;

/// <summary>One message a rank sends to its successor: a slice of the vector, sent once the rank has received
/// <see cref="AfterReceived"/> messages from its predecessor (the slice it forwards is then final).</summary>
internal readonly record struct RingSend(int Offset, int Count, int AfterReceived);

internal enum RingArrival : byte
{
    /// <summary>The slice is final: written over the vector (all-gather, broadcast).</summary>
    Copy,

    /// <summary>A partial sum: added to this rank's values (reduce-scatter).</summary>
    Add,

    /// <summary>The last addition of a mean's reduce-scatter, then divided by the world size.</summary>
    AddThenDivide,
}

/// <summary>One message a rank receives from its predecessor and what it does with it.</summary>
internal readonly record struct RingReceive(int Offset, int Count, RingArrival Arrival);

/// <summary>
/// The messages of one collective, in the order both ends of every link agree on.
/// All-reduce: the vector is cut into buckets (in gradient order); each bucket into n segments (segment s starts at
/// ⌊L·s/n⌋); each segment into the same number of pieces. In ring step t = 0 .. 2n-3 rank r sends segment (r-t-1) mod n
/// and receives segment (r-t-2) mod n: steps below n-1 add (reduce-scatter), the rest copy (all-gather). So segment s is
/// summed along the chain s+1, s+2, ..., s (mod n) and rank s sends the final sum around: a fixed order, hence the
/// same bits on every rank and in every run. Pieces let a rank forward piece j as soon as it has it: sends and
/// receives overlap.
/// </summary>
internal sealed record RingSchedule(RingSend[] Sends, RingReceive[] Receives)
{
    public int LargestReceive { get; } = Receives.Length == 0 ? 0 : Receives.Max(r => r.Count);

    public int LargestSend { get; } = Sends.Length == 0 ? 0 : Sends.Max(s => s.Count);

    public static RingSchedule AllReduce(int length, int rank, int worldSize, int bucketElements, int pieceElements, bool mean)
    {
        var sends = new List<RingSend>();
        var receives = new List<RingReceive>();
        var steps = 2 * (worldSize - 1);
        for (var bucketStart = 0; bucketStart < length; bucketStart += bucketElements)
        {
            var bucketLength = Math.Min(bucketElements, length - bucketStart);
            var largestSegment = (bucketLength + worldSize - 1) / worldSize;
            var pieces = Math.Max(1, (largestSegment + pieceElements - 1) / pieceElements);
            var first = receives.Count;
            for (var step = 0; step < steps; step++)
            {
                var sent = Modulo(rank - step - 1, worldSize);
                var received = Modulo(rank - step - 2, worldSize);
                var arrival = step < worldSize - 2 ? RingArrival.Add
                    : step == worldSize - 2 ? (mean ? RingArrival.AddThenDivide : RingArrival.Add)
                    : RingArrival.Copy;
                for (var piece = 0; piece < pieces; piece++)
                {
                    var (sendOffset, sendCount) = Piece(bucketStart, bucketLength, worldSize, sent, pieces, piece);
                    // What a rank forwards in step t is what it received in step t-1 (same piece index).
                    sends.Add(new RingSend(sendOffset, sendCount, step == 0 ? 0 : first + (step - 1) * pieces + piece + 1));
                    var (receiveOffset, receiveCount) = Piece(bucketStart, bucketLength, worldSize, received, pieces, piece);
                    receives.Add(new RingReceive(receiveOffset, receiveCount, arrival));
                }
            }
        }
        return new RingSchedule([.. sends], [.. receives]);
    }

    /// <summary>The root's vector travels root → root+1 → ... → root-1 in pieces; each rank forwards a piece once it has it.</summary>
    public static RingSchedule Broadcast(int length, int rank, int worldSize, int root, int pieceElements)
    {
        var position = Modulo(rank - root, worldSize);
        var pieces = Math.Max(1, (length + pieceElements - 1) / pieceElements);
        var sends = new List<RingSend>();
        var receives = new List<RingReceive>();
        for (var piece = 0; piece < pieces; piece++)
        {
            var (offset, count) = Split(0, length, pieces, piece);
            if (position < worldSize - 1) sends.Add(new RingSend(offset, count, position == 0 ? 0 : piece + 1));
            if (position > 0) receives.Add(new RingReceive(offset, count, RingArrival.Copy));
        }
        return new RingSchedule([.. sends], [.. receives]);
    }

    /// <summary>Piece <paramref name="piece"/> of segment <paramref name="segment"/> of a bucket.</summary>
    private static (int Offset, int Count) Piece(int bucketStart, int bucketLength, int worldSize, int segment, int pieces, int piece)
    {
        var (segmentStart, segmentLength) = Split(bucketStart, bucketLength, worldSize, segment);
        return Split(segmentStart, segmentLength, pieces, piece);
    }

    /// <summary>Part <paramref name="index"/> of <paramref name="parts"/> near-equal parts of [start, start + length).</summary>
    internal static (int Offset, int Count) Split(int start, int length, int parts, int index)
    {
        var from = start + (int)((long)length * index / parts);
        var to = start + (int)((long)length * (index + 1) / parts);
        return (from, to - from);
    }

    private static int Modulo(int value, int modulus) => ((value % modulus) + modulus) % modulus;
}
