// A small stdio MCP server (the pinned TypeScript SDK's low-level `Server`) whose lists come in
// pages: tools, prompts and resources, two items a page, `nextCursor` until the last one.
// None of the other servers of servers_interop.test.mjs paginates, so this one makes the
// aggregate follow a server's cursor and page the union.
//
// Run: node tests/interop/paging_server.mjs   (stdio; items and page size are fixed below)

import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import {
    CallToolRequestSchema,
    ErrorCode,
    GetPromptRequestSchema,
    ListPromptsRequestSchema,
    ListResourcesRequestSchema,
    ListResourceTemplatesRequestSchema,
    ListToolsRequestSchema,
    McpError,
    ReadResourceRequestSchema,
} from '@modelcontextprotocol/sdk/types.js';

const PAGE_SIZE = 2;
const ITEMS = 5; // three pages: 2, 2, 1

const numbers = Array.from({ length: ITEMS }, (_, i) => i + 1);
const lists = {
    tools: numbers.map((n) => ({ name: `paged_${n}`, description: `tool ${n} of ${ITEMS}`, inputSchema: { type: 'object', properties: {} } })),
    prompts: numbers.map((n) => ({ name: `paged_prompt_${n}`, description: `prompt ${n} of ${ITEMS}` })),
    resources: numbers.map((n) => ({ uri: `paging://item/${n}`, name: `item ${n}`, mimeType: 'text/plain' })),
};

/** One page of `items`: the cursor is the offset of the page as text (this server's own form). */
function page(items, cursor) {
    const start = cursor === undefined ? 0 : Number(cursor);
    if (!Number.isInteger(start) || start < 0 || start >= items.length) {
        throw new McpError(ErrorCode.InvalidParams, `invalid cursor: ${cursor}`);
    }
    const end = start + PAGE_SIZE;
    return { items: items.slice(start, end), nextCursor: end < items.length ? String(end) : undefined };
}

const server = new Server({ name: 'paging-server', version: '1.0.0' }, { capabilities: { tools: {}, prompts: {}, resources: {} } });
for (const [schema, key] of [[ListToolsRequestSchema, 'tools'], [ListPromptsRequestSchema, 'prompts'], [ListResourcesRequestSchema, 'resources']]) {
    server.setRequestHandler(schema, async (request) => {
        const { items, nextCursor } = page(lists[key], request.params?.cursor);
        return nextCursor === undefined ? { [key]: items } : { [key]: items, nextCursor };
    });
}
server.setRequestHandler(ListResourceTemplatesRequestSchema, async () => ({ resourceTemplates: [] }));
server.setRequestHandler(CallToolRequestSchema, async (request) => {
    if (!lists.tools.some((t) => t.name === request.params.name)) {
        throw new McpError(ErrorCode.InvalidParams, `unknown tool: ${request.params.name}`);
    }
    return { content: [{ type: 'text', text: `called ${request.params.name}` }] };
});
server.setRequestHandler(GetPromptRequestSchema, async (request) => ({
    messages: [{ role: 'user', content: { type: 'text', text: `prompt ${request.params.name}` } }],
}));
server.setRequestHandler(ReadResourceRequestSchema, async (request) => {
    if (!lists.resources.some((r) => r.uri === request.params.uri)) {
        throw new McpError(-32002, 'Resource not found', { uri: request.params.uri });
    }
    return { contents: [{ uri: request.params.uri, mimeType: 'text/plain', text: `contents of ${request.params.uri}` }] };
});

await server.connect(new StdioServerTransport());
