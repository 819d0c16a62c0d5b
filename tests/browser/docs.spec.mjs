// Swagger UI at /api/docs/: authorize with the admin's access token, then try
// GET /api/users/me/ from the page and read the answer.
import { check, login, shot, watchConsole } from './lib.mjs';

const PATH = '/api/users/me/';

export async function docsSpec(context, env) {
  const token = await login(env.base, env.adminUsername, env.adminPassword);
  const page = await context.newPage();
  const problems = watchConsole(page, 'docs page');

  await page.goto(`${env.base}/api/docs/`);
  const op = page.locator('.opblock.opblock-get', { has: page.locator(`.opblock-summary-path[data-path="${PATH}"]`) }).first();
  await op.waitFor();
  await shot(page, 'docs-01-loaded');

  // Authorize: the bearer scheme's value box (the first scheme when none says bearer).
  await page.locator('.auth-wrapper button.authorize').first().click();
  const modal = page.locator('.dialog-ux .modal-ux');
  await modal.waitFor();
  const containers = modal.locator('.auth-container');
  let scheme = containers.filter({ hasText: /bearer/i }).first();
  if (!(await scheme.count())) scheme = containers.first();
  await scheme.locator('input').first().fill(token);
  await shot(page, 'docs-02-authorize');
  // (Swagger UI's buttons carry aria-labels of their own, so they are found by class and text.)
  await modal.locator('button.modal-btn.authorize', { hasText: 'Authorize' }).first().click();
  await modal.locator('button.modal-btn', { hasText: 'Logout' }).first().waitFor();  // replaces "Authorize" once set
  await modal.locator('button.btn-done').first().click();
  await modal.waitFor({ state: 'detached' });

  // Expand the operation, Try it out, Execute.
  await op.locator('.opblock-summary-control').first().click();
  await op.locator('button.try-out__btn').click();
  await op.locator('button.execute').click();
  const status = op.locator('.live-responses-table .response .response-col_status').first();
  await status.waitFor();
  const live = op.locator('.live-responses-table');
  const text = await live.innerText();
  check((await status.innerText()).trim().startsWith('200'), `Execute answered:\n${text}`);
  check(text.includes(`"username": "${env.adminUsername}"`) || text.includes(`"username":"${env.adminUsername}"`),
    `the answer does not show the username ${env.adminUsername}:\n${text}`);
  check((await op.locator('.request-url, .curl').first().innerText()).includes(PATH), 'the request URL is not shown');
  await op.locator('.live-responses-table').scrollIntoViewIfNeeded();
  await shot(page, 'docs-03-executed');

  check(problems.length === 0, `errors in the browser:\n${problems.join('\n')}`);
  await page.close();
}
