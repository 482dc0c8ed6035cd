namespace RAE.Models.IO;

/// <summary>
/// Checks the tree an unpickler built without recursing: lists and dicts can be filled after they are nested (and even
/// made to contain themselves through the memo), so their depth is only known once the pickle has been read. Every
/// later consumer walks the tree recursively, so a tree deeper than the limit, or one with a cycle, is refused here.
/// Containers shared through the memo are visited once here, but every later walk (materializing tensors, flattening
/// a state dict) visits them once per path: a few bytes of shared lists can stand for 2^60 nodes, so the number of
/// nodes the walks will meet is limited too.
/// </summary>
internal static class PickleNesting
{
    public static void Check(object? root, string source, ReaderLimits limits)
    {
        if (!IsContainer(root)) return;
        var maxDepth = limits.MaxPickleNestingDepth;
        var heights = new Dictionary<object, (int Height, long Nodes)>(ReferenceEqualityComparer.Instance);
        var onPath = new HashSet<object>(ReferenceEqualityComparer.Instance);
        var path = new Stack<Frame>();
        Enter(root!, path, onPath, source, maxDepth);
        while (path.Count > 0)
        {
            var frame = path.Peek();
            if (frame.Children.MoveNext())
            {
                var child = frame.Children.Current;
                if (!IsContainer(child))
                {
                    frame.Nodes = SaturatingAdd(frame.Nodes, 1);
                    continue;
                }
                if (heights.TryGetValue(child!, out var known))
                {
                    frame.Height = Math.Max(frame.Height, known.Height + 1);
                    frame.Nodes = SaturatingAdd(frame.Nodes, known.Nodes);
                }
                else if (onPath.Contains(child!))
                    throw CheckpointFormatException.LimitExceeded(source, nameof(ReaderLimits.MaxPickleNestingDepth), maxDepth,
                        $"the pickle holds a container that contains itself (a {child!.GetType().Name} in a reference cycle), which has no finite depth");
                else Enter(child!, path, onPath, source, maxDepth);
                continue;
            }
            path.Pop();
            onPath.Remove(frame.Node);
            if (frame.Height > maxDepth) throw TooDeep(source, maxDepth);
            if (frame.Nodes > limits.MaxPickleTreeNodes)
                throw CheckpointFormatException.LimitExceeded(source, nameof(ReaderLimits.MaxPickleTreeNodes), limits.MaxPickleTreeNodes,
                    $"pickled containers shared through the memo expand to {(frame.Nodes == long.MaxValue ? "more than 2^63" : frame.Nodes.ToString(System.Globalization.CultureInfo.InvariantCulture))} nodes when walked as a tree");
            heights[frame.Node] = (frame.Height, frame.Nodes);
            if (path.Count == 0) continue;
            var parent = path.Peek();
            parent.Height = Math.Max(parent.Height, frame.Height + 1);
            parent.Nodes = SaturatingAdd(parent.Nodes, frame.Nodes);
        }
    }

    private static long SaturatingAdd(long a, long b) => a > long.MaxValue - b ? long.MaxValue : a + b;

    private static void Enter(object node, Stack<Frame> path, HashSet<object> onPath, string source, int maxDepth)
    {
        if (path.Count >= maxDepth) throw TooDeep(source, maxDepth);
        onPath.Add(node);
        path.Push(new Frame(node, Children(node).GetEnumerator()));
    }

    private static CheckpointFormatException TooDeep(string source, int maxDepth) =>
        CheckpointFormatException.LimitExceeded(source, nameof(ReaderLimits.MaxPickleNestingDepth), maxDepth,
            "pickled containers nest deeper than the limit");

    private static bool IsContainer(object? value) =>
        value is PickleTuple or List<object?> or PickleDict or HashSet<object?> or PickleObject;

    private static IEnumerable<object?> Children(object node) => node switch
    {
        PickleTuple tuple => tuple,
        List<object?> list => list,
        PickleDict dictionary => dictionary.Keys.Concat(dictionary.Values).Concat(dictionary.Attributes.Values),
        HashSet<object?> set => set,
        PickleObject instance => [instance.Arguments, instance.State],
        _ => [],
    };

    private sealed class Frame(object node, IEnumerator<object?> children)
    {
        public object Node { get; } = node;

        public IEnumerator<object?> Children { get; } = children;

        public int Height { get; set; } = 1;

        /// <summary>This container and everything below it, counted once per path (as a recursive walk meets them).</summary>
        public long Nodes { get; set; } = 1;
    }
}
