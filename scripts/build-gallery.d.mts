/** Builds the web gallery into `outDir` (default dist/gallery); answers the files the page loads first. */
export function buildGallery(options?: { outDir?: string }): Promise<{ outDir: string; initial: string[] }>;
