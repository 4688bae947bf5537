import { createReadStream, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { canonicalHeaderName, readDeviceCsv } from '../../src/producer/csv-source.js';
import { BOM, chunked, collect, fixturePath, I, MALFORMED, malformedSpan, readEveryWay, refusal, rows, unclosedSpan, type Row } from './csv-test-helpers.js';

const AWKWARD_EXPECTED: Row[] = [
  ['device', 2, 'DEV001', 'CA01', I],
  ['device', 3, 'DEV002', 'CA01', I],
  // The quoted Note on lines 4-5 holds a line break: the record starts on 4, the next one on 6.
  ['device', 4, 'DEV003', 'CA01', I],
  ['device', 6, 'DEV004', 'CA01', I],
  ['device', 8, '=CMD(1)', 'CA01', I],
  ['rejected', 9, 'CaSn is empty and no default CaSn was given', 'DEV006'],
];

describe('readDeviceCsv: valid but awkward input', () => {
  it('reads the LF fixture from a file stream: quoted commas, doubled quotes, line breaks, extra columns, any order, snake_case, trailing spaces, blank lines', async () => {
    const items = await collect(createReadStream(fixturePath('awkward-lf.csv'), { highWaterMark: 16 }));
    expect(rows(items)).toEqual(AWKWARD_EXPECTED);
  });

  it('gives the same items and lines for every chunking of the fixture', async () => {
    expect(await readEveryWay(readFileSync(fixturePath('awkward-lf.csv')))).toEqual(AWKWARD_EXPECTED);
  });

  it('gives the same lines with a UTF-8 BOM and CRLF, with or without a trailing newline', async () => {
    const crlf = Buffer.from(readFileSync(fixturePath('awkward-lf.csv'), 'utf8').replace(/\n/g, '\r\n'));
    expect(await readEveryWay(Buffer.concat([BOM, crlf]))).toEqual(AWKWARD_EXPECTED);
    expect(await readEveryWay(Buffer.concat([BOM, crlf.subarray(0, crlf.length - 2)]))).toEqual(AWKWARD_EXPECTED);
    expect(await readEveryWay(Buffer.from(readFileSync(fixturePath('awkward-lf.csv'), 'utf8').trimEnd()))).toEqual(
      AWKWARD_EXPECTED,
    );
  });

  it('counts a CRLF inside a quoted cell as one line break (csv-parse counts two)', async () => {
    const data = Buffer.from(
      `DeviceSn,Note,CaSn,MqttInstanceId\r\nD2,"a\r\n\r\nb\r\nc",CA,${I}\r\nD6,"x\ny\rz",CA,${I}\r\n\r\nD10,,CA,${I}\r\n`,
    );
    expect(await readEveryWay(data)).toEqual([
      ['device', 2, 'D2', 'CA', I],
      ['device', 6, 'D6', 'CA', I],
      ['device', 10, 'D10', 'CA', I],
    ]);
  });

  it('splits a file that mixes CRLF and LF lines on both', async () => {
    const data = Buffer.from(`DeviceSn,CaSn,MqttInstanceId\r\nD2,CA,${I}\nD3,CA,${I}\r\nD4,CA,${I}\n`);
    expect(await readEveryWay(data)).toEqual([
      ['device', 2, 'D2', 'CA', I],
      ['device', 3, 'D3', 'CA', I],
      ['device', 4, 'D4', 'CA', I],
    ]);
  });

  it('matches mixed-case and spaced header names, and keeps formula-like serials', async () => {
    const items = await collect(createReadStream(fixturePath('mixed-case-headers.csv')));
    expect(rows(items)).toEqual([
      ['device', 2, 'AbC123', 'CA01', I],
      ['device', 3, '+41', 'ca02', 'post-cn-abc12345'],
    ]);
  });

  it.each(['DeviceSn', 'device_sn', 'Device SN', 'deviceSN', ' DEVICE-SN ', 'device.sn'])(
    'maps header %j to DeviceSn',
    (name) => {
      expect(canonicalHeaderName(name)).toBe('devicesn');
    },
  );

  it('accepts instance_id for MqttInstanceId and ca_sn for CaSn, and skips blank lines before the header', async () => {
    const data = Buffer.from(`\n  \r\nSN Note,Instance_ID,CA_SN,Device_Sn\nx,${I},CA,D5\n`);
    expect(await readEveryWay(data)).toEqual([['device', 4, 'D5', 'CA', I]]);
  });

  it('fills absent columns and empty cells from the defaults; a cell wins over a default', async () => {
    const onlySerials = Buffer.from('DeviceSn\nD2\n  D3  \n');
    expect(await readEveryWay(onlySerials, { defaultCaSn: 'CA09', defaultInstanceId: I })).toEqual([
      ['device', 2, 'D2', 'CA09', I],
      ['device', 3, 'D3', 'CA09', I],
    ]);
    const someCells = Buffer.from(`DeviceSn,CaSn,MqttInstanceId\nD2,,\nD3,CA01, post-cn-abc12345 \nD4\n`);
    expect(await readEveryWay(someCells, { defaultCaSn: ' CA09 ', defaultInstanceId: I })).toEqual([
      ['device', 2, 'D2', 'CA09', I],
      ['device', 3, 'D3', 'CA01', 'post-cn-abc12345'],
      ['device', 4, 'D4', 'CA09', I],
    ]);
    const items = await collect(createReadStream(fixturePath('awkward-lf.csv')), { defaultCaSn: 'CA09' });
    expect(rows(items).at(-1)).toEqual(['device', 9, 'DEV006', 'CA09', I]);
  });

  it('reads a header-only file as zero items', async () => {
    expect(await collect(createReadStream(fixturePath('header-only.csv')))).toEqual([]);
  });

  it('accepts strings as chunks', async () => {
    async function* strings(): AsyncGenerator<string> {
      await Promise.resolve();
      yield 'DeviceSn,CaSn,MqttInstanceId\nD2,C';
      yield `A,${I}\n`;
    }
    expect(rows(await collect(strings()))).toEqual([['device', 2, 'D2', 'CA', I]]);
  });
});

describe('readDeviceCsv: bad rows are rejected with their line and reading goes on', () => {
  it('rejects each bad row with a reason naming the column', async () => {
    const data = Buffer.concat([
      Buffer.from(`DeviceSn,CaSn,MqttInstanceId\nGOOD02,CA01,${I}\n,CA01,${I}\n`),
      Buffer.from(`${'é'.repeat(70)},CA01,${I}\nDEV 05,CA01,${I}\nDEV\u000706,CA01,${I}\nDEV07,CA01,MQTT_bad\n`),
      Buffer.from('DEV'),
      Buffer.from([0xff]),
      Buffer.from(`08,CA01,${I}\nDEV09,CA01,${I},notes `),
      Buffer.from([0xc3, 0x28]),
      Buffer.from(`\n,,\nDEV11,,\nGOOD12,CA01,${I}`),
    ]);
    expect(await readEveryWay(data)).toEqual([
      ['device', 2, 'GOOD02', 'CA01', I],
      ['rejected', 3, 'DeviceSn is empty'],
      ['rejected', 4, 'DeviceSn is longer than 128 bytes (140)', `${'é'.repeat(64)}…`],
      ['rejected', 5, 'DeviceSn contains whitespace (U+0020) at position 4', 'DEV 05'],
      ['rejected', 6, 'DeviceSn contains a control character (U+0007) at position 4', 'DEV\u000706'],
      [
        'rejected',
        7,
        'MqttInstanceId "MQTT_bad" is not an instance id like mqtt-cn-0pp1ldu0a01 (lower-case letters, digits and \'-\')',
        'DEV07',
      ],
      ['rejected', 8, 'row is not valid UTF-8 (column DeviceSn)'],
      ['rejected', 9, 'row is not valid UTF-8 (column 4)', 'DEV09'],
      // line 10 (",,") is a blank spreadsheet row: skipped
      [
        'rejected',
        11,
        'CaSn is empty and no default CaSn was given; MqttInstanceId is empty and no default instance was given',
        'DEV11',
      ],
      ['device', 12, 'GOOD12', 'CA01', I],
    ]);
  });

  it('refuses every line after a quote that never closes, as one span to the end of the file', async () => {
    // GOOD04 and GOOD05 are inside the quoted cell that opens on line 3: they are not rows.
    const lf = `DeviceSn,CaSn,MqttInstanceId\nGOOD02,CA01,${I}\n"BAD03,CA01,${I}\nGOOD04,CA01,${I}\nGOOD05,CA01,${I}\n`;
    const expected: Row[] = [
      ['device', 2, 'GOOD02', 'CA01', I],
      ['rejected', 3, unclosedSpan(3, 5)],
    ];
    expect(await readEveryWay(Buffer.from(lf))).toEqual(expected);
    expect(await readEveryWay(Buffer.from(lf.replace(/\n/g, '\r\n')))).toEqual(expected);
    expect(await readEveryWay(Buffer.from(lf.replace(/\n/g, '\r')))).toEqual(expected);
    // Without a final line break the span ends on the last line all the same.
    expect(await readEveryWay(Buffer.from(lf.trimEnd()))).toEqual(expected);
  });

  it('refuses a stray opening quote together with every line up to where a later quote seems to close it', async () => {
    const data = Buffer.from(
      `DeviceSn,CaSn,MqttInstanceId,Note\nGOOD02,CA01,${I},ok\nBAD03,"CA01,${I},x\nGOOD04,CA01,${I},"note, 4"\nGOOD05,CA01,${I},ok\n`,
    );
    expect(await readEveryWay(data)).toEqual([
      ['device', 2, 'GOOD02', 'CA01', I],
      ['rejected', 3, malformedSpan(3, 4)],
      ['device', 5, 'GOOD05', 'CA01', I],
    ]);
  });

  it('a quote that never closes is one span however long: nothing of it is held, nothing of it becomes a row', async () => {
    const good = Array.from({ length: 2000 }, (_, index) => `G${index + 4},CA01,${I}\n`).join('');
    const data = Buffer.from(`DeviceSn,CaSn,MqttInstanceId\nGOOD02,CA01,${I}\nBAD03,"CA01,${I}\n${good}`);
    expect(rows(await collect(chunked(data, 4096), { maxRecordBytes: 1000 }))).toEqual([
      ['device', 2, 'GOOD02', 'CA01', I],
      ['rejected', 3, unclosedSpan(3, 2003)],
    ]);
  });

  it('rejects a line longer than the record limit and goes on', async () => {
    const data = Buffer.from(
      `DeviceSn,CaSn,MqttInstanceId\nGOOD02,CA01,${I}\n${'x'.repeat(100_000)},CA01,${I}\r\nGOOD04,CA01,${I}\n`,
    );
    expect(rows(await collect(chunked(data, 4096)))).toEqual([
      ['device', 2, 'GOOD02', 'CA01', I],
      ['rejected', 3, 'row is longer than 65536 bytes'],
      ['device', 4, 'GOOD04', 'CA01', I],
    ]);
    expect(await readEveryWay(data, { maxRecordBytes: 500 })).toEqual([
      ['device', 2, 'GOOD02', 'CA01', I],
      ['rejected', 3, 'row is longer than 500 bytes'],
      ['device', 4, 'GOOD04', 'CA01', I],
    ]);
  });

  it('rejects a row with a cell over maxFieldBytes, naming the column', async () => {
    const data = Buffer.from(`DeviceSn,CaSn,MqttInstanceId,Note\nD2,CA01,${I},${'n'.repeat(5000)}\nD3,CA01,${I},short\n`);
    expect(await readEveryWay(data)).toEqual([
      ['rejected', 2, 'column Note is longer than 4096 bytes (5000)', 'D2'],
      ['device', 3, 'D3', 'CA01', I],
    ]);
  });

  it('rejects malformed quoting line by line', async () => {
    const data = Buffer.from(`DeviceSn,CaSn,MqttInstanceId\nD"2,CA01,${I}\n"D3"x,CA01,${I}\nD4,CA01,${I}`);
    expect(await readEveryWay(data)).toEqual([
      ['rejected', 2, MALFORMED],
      ['rejected', 3, MALFORMED],
      ['device', 4, 'D4', 'CA01', I],
    ]);
  });

  it('ends with a rejected row saying where reading stopped when the input fails mid-way', async () => {
    // More than the first 8 KiB, which are inspected for binary content before any parsing.
    const good = Array.from({ length: 400 }, (_, index) => `D${index + 2},CA01,${I}\n`).join('');
    async function* failing(): AsyncGenerator<string> {
      await Promise.resolve();
      yield `DeviceSn,CaSn,MqttInstanceId\n${good}`;
      yield 'D402,CA';
      throw new Error('disk gone');
    }
    const items = rows(await collect(failing()));
    expect(items).toHaveLength(401);
    expect(items.at(-2)).toEqual(['device', 401, 'D401', 'CA01', I]);
    expect(items.at(-1)).toEqual(['rejected', 402, 'reading stopped at this line: the input failed (disk gone)']);
  });

  it('closes the input when the consumer stops early', async () => {
    let closed = false;
    async function* endless(): AsyncGenerator<string> {
      await Promise.resolve();
      try {
        yield 'DeviceSn,CaSn,MqttInstanceId\n';
        for (let index = 0; ; index += 1) yield `D${index},CA01,${I}\n`;
      } finally {
        closed = true;
      }
    }
    for await (const item of readDeviceCsv(endless())) {
      expect(item.kind).toBe('device');
      break;
    }
    expect(closed).toBe(true);
  });
});

describe('readDeviceCsv: whole-file refusals', () => {
  it('refuses a header without a DeviceSn column', async () => {
    const error = await refusal(createReadStream(fixturePath('no-device-column.csv')));
    expect(error.code).toBe('NO_DEVICE_SN_COLUMN');
    expect(error.message).toContain('no DeviceSn column');
  });

  it('refuses binary content', async () => {
    // Deterministic "random" bytes with NULs, as a zip or an image would have.
    const bytes = Buffer.alloc(20_000);
    let state = 12345;
    for (let index = 0; index < bytes.length; index += 1) {
      state = (state * 1103515245 + 12345) % 2 ** 31;
      bytes[index] = index % 97 === 0 ? 0 : state % 256;
    }
    const error = await refusal(chunked(bytes, 1000));
    expect(error.code).toBe('NOT_CSV');
    expect(error.message).toContain('NUL');
  });

  it.each([
    ['no bytes', Buffer.alloc(0)],
    ['only a BOM', BOM],
    ['only blank lines', Buffer.from('\r\n\n   \n')],
  ])('refuses an empty file: %s', async (_name, data) => {
    expect((await refusal(chunked(data, 1))).code).toBe('EMPTY_FILE');
  });

  it('refuses a missing CaSn column without a default, and accepts it with one', async () => {
    const error = await refusal(createReadStream(fixturePath('no-ca-column.csv')));
    expect(error.code).toBe('MISSING_COLUMN');
    expect(error.message).toContain('CaSn');
    const items = await collect(createReadStream(fixturePath('no-ca-column.csv')), { defaultCaSn: 'CA09' });
    expect(rows(items)).toEqual([['device', 2, 'DEV001', 'CA09', I]]);
  });

  it('refuses a missing MqttInstanceId column without a default', async () => {
    const error = await refusal(chunked(Buffer.from('DeviceSn,CaSn\nD2,CA01\n'), 64));
    expect(error.code).toBe('MISSING_COLUMN');
    expect(error.message).toContain('MqttInstanceId');
  });

  it('refuses invalid UTF-8 in the header, UTF-16, duplicate columns, a broken header and invalid defaults', async () => {
    const latin1 = Buffer.concat([Buffer.from('DeviceSn,CaSn,MqttInstanceId,Num'), Buffer.from([0xe9, 0x0a])]);
    expect((await refusal(chunked(latin1, 64))).code).toBe('NOT_CSV');
    const utf16 = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('DeviceSn\n', 'utf16le')]);
    expect((await refusal(chunked(utf16, 64))).code).toBe('NOT_CSV');
    const duplicate = Buffer.from(`DeviceSn,CaSn,MqttInstanceId,device_sn\nD2,CA01,${I},D2\n`);
    expect((await refusal(chunked(duplicate, 64))).code).toBe('DUPLICATE_COLUMN');
    const brokenHeader = Buffer.from(`"DeviceSn,CaSn,MqttInstanceId\nD2,CA01,${I}\n`);
    expect((await refusal(chunked(brokenHeader, 64))).code).toBe('NOT_CSV');
    const good = Buffer.from(`DeviceSn\nD2\n`);
    expect((await refusal(chunked(good, 64), { defaultCaSn: 'CA 1', defaultInstanceId: I })).code).toBe('INVALID_OPTION');
    expect((await refusal(chunked(good, 64), { defaultCaSn: 'CA1', defaultInstanceId: 'BAD' })).code).toBe('INVALID_OPTION');
  });

  it('refuses an input that fails before the header as READ_FAILED', async () => {
    async function* failing(): AsyncGenerator<string> {
      await Promise.resolve();
      yield 'DeviceSn,Ca';
      throw new Error('permission denied');
    }
    const error = await refusal(failing());
    expect(error.code).toBe('READ_FAILED');
    expect(error.cause).toBeInstanceOf(Error);
  });
});

describe('readDeviceCsv: streaming', () => {
  it('reads 200,000 rows from a generator without holding them', async () => {
    const total = 200_000;
    const rowsPerChunk = 997; // not a divisor of the total, so the last chunk is partial
    async function* generate(): AsyncGenerator<string> {
      await Promise.resolve();
      yield '\ufeffDeviceSn,CaSn,MqttInstanceId\r\n';
      for (let start = 0; start < total; start += rowsPerChunk) {
        let chunk = '';
        for (let index = start; index < Math.min(start + rowsPerChunk, total); index += 1) {
          chunk += `${index.toString(16).padStart(12, '0')},CA01,${I}\r\n`;
        }
        yield chunk;
      }
    }
    global.gc?.();
    const heapBefore = process.memoryUsage().heapUsed;
    const startedAt = Date.now();
    let devices = 0;
    let lastLine = 0;
    let peakHeap = heapBefore;
    for await (const item of readDeviceCsv(generate())) {
      if (item.kind !== 'device') throw new Error(`unexpected ${JSON.stringify(item)}`);
      devices += 1;
      lastLine = item.request.line;
      if (devices % 20_000 === 0) peakHeap = Math.max(peakHeap, process.memoryUsage().heapUsed);
    }
    const elapsedMs = Date.now() - startedAt;
    expect(devices).toBe(total);
    expect(lastLine).toBe(total + 1);
    // Loose on purpose: only a gross accumulation (hundreds of MB) should fail this.
    expect(peakHeap - heapBefore).toBeLessThan(256 * 1024 * 1024);
    expect(elapsedMs).toBeLessThan(30_000);
    console.info(
      `200k rows: ${elapsedMs} ms, heap ${Math.round(heapBefore / 2 ** 20)} MB -> peak ${Math.round(peakHeap / 2 ** 20)} MB`,
    );
  });
});
