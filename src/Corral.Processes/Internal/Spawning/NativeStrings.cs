using System.Runtime.InteropServices;
using System.Text;

namespace Corral.Processes.Internal.Spawning;

/// <summary>NUL-terminated UTF-8 copies and NULL-terminated pointer arrays, freed together.</summary>
internal sealed unsafe class NativeStrings : IDisposable
{
    private readonly List<nint> _blocks = [];

    public byte* Add(string s)
    {
        int length = Encoding.UTF8.GetByteCount(s);
        byte* p = (byte*)NativeMemory.Alloc((nuint)length + 1);
        _blocks.Add((nint)p);
        Encoding.UTF8.GetBytes(s, new Span<byte>(p, length));
        p[length] = 0;
        return p;
    }

    public byte** AddArray(IReadOnlyList<string> items)
    {
        byte** array = (byte**)NativeMemory.Alloc((nuint)(items.Count + 1), (nuint)sizeof(byte*));
        _blocks.Add((nint)array);
        for (int i = 0; i < items.Count; i++)
            array[i] = Add(items[i]);
        array[items.Count] = null;
        return array;
    }

    public void Dispose()
    {
        foreach (nint block in _blocks)
            NativeMemory.Free((void*)block);
        _blocks.Clear();
    }
}
