import type { Command } from 'commander';
import { action } from '../action.js';
import { EXIT, ExitError, type CliIo } from '../context.js';

/** `albums ls|create|rename|rm`. */
export function albumsCommand(program: Command, io: CliIo): void {
  const albums = program.command('albums').description('list, create, rename and delete albums');

  albums.command('ls').description('list albums (names; --long adds creation times)')
    .option('-l, --long', 'show creation times')
    .action(action(io, async (ctx, opts: { long?: boolean }) => {
      const listing = await ctx.client.listAlbums({ details: true });
      const list = listing.albums ?? listing.albumList.map((name) => ({ name, createdAt: '' }));
      ctx.result(listing, list.map((a) => (opts.long ? `${a.createdAt}  ${a.name}` : a.name)));
    }));

  albums.command('create').description('create an album').argument('<name>', 'album name')
    .action(action(io, async (ctx, name: string) => {
      const res = await ctx.client.createAlbum(name);
      ctx.result(res, res.message);
    }));

  albums.command('rename').description('rename an album').argument('<from>').argument('<to>')
    .action(action(io, async (ctx, from: string, to: string) => {
      const res = await ctx.client.renameAlbum(from, to);
      ctx.result(res, res.message);
    }));

  albums.command('rm').description('delete an album and all its images (admin role); asks first on a terminal').argument('<name>')
    .option('-y, --yes', 'do not ask')
    .action(action(io, async (ctx, name: string, opts: { yes?: boolean }) => {
      if (!opts.yes && io.stdin?.isTTY) {
        const { imageList } = await ctx.client.listImages(name);
        if (!(await ctx.confirm(`delete album ${JSON.stringify(name)} and its ${imageList.length} image${imageList.length === 1 ? '' : 's'}?`))) {
          ctx.note('nothing deleted');
          throw new ExitError(EXIT.failed);
        }
      }
      const res = await ctx.client.deleteAlbum(name);
      ctx.result(res, res.message);
    }));
}
